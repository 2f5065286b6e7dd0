import { formatDuration } from './units.js';

/**
 * The write lease behind `/primary`: a primary's keeper answers 200 only while it holds
 * positive, recent evidence that its server is the only primary. Each primary iteration
 * judges the evidence it gathered; the lease is renewed for `leaseMs` on a positive verdict,
 * revoked at once on evidence against it, and otherwise lapses by itself (a stalled loop
 * renews nothing). Pure: evidence in, verdict out. Written for any number of peers.
 */

export type PeerView = {
  name: string;
  /** What the peer's server answered, or 'down' when it did not. */
  role: 'primary' | 'standby' | 'down' | 'unknown';
  /** A primary peer runs fenced (read-only by default). */
  fenced: boolean;
  timeline: number | null;
};

export type WitnessView = 'none' | 'ok' | 'granted-to-peer' | 'unreachable';

export interface LeaseEvidence {
  /** This iteration read an unfenced primary on the local server. */
  localPrimary: boolean;
  /** The local postmaster took a new connection recently (the server watch). */
  localAccepting: boolean;
  myTimeline: number | null;
  peers: PeerView[];
  /** The witness's answer to this iteration's heartbeat ('none': no witness configured). */
  witness: WitnessView;
}

export type LeaseVerdict =
  | { kind: 'renew'; reason: string }
  /** No positive evidence this time: the lease runs out by itself. */
  | { kind: 'lapse'; reason: string }
  /** Evidence against: the lease ends now. */
  | { kind: 'revoke'; reason: string };

export function judgeLease(e: LeaseEvidence): LeaseVerdict {
  if (!e.localPrimary) return { kind: 'revoke', reason: 'the local server is not an unfenced primary' };
  if (!e.localAccepting) return { kind: 'revoke', reason: 'the local postmaster takes no new connections' };
  // Another unfenced primary on our timeline or a newer one competes with us. One on an older
  // timeline is an old primary back from the dead: its keeper fences it when it sees us.
  const rival = e.peers.find(
    (p) =>
      p.role === 'primary' &&
      !p.fenced &&
      (p.timeline === null || e.myTimeline === null || p.timeline >= e.myTimeline),
  );
  if (rival)
    return {
      kind: 'revoke',
      reason: `peer ${rival.name} answers as an unfenced primary too (timeline ${rival.timeline ?? '?'})`,
    };
  if (e.witness === 'granted-to-peer')
    return { kind: 'revoke', reason: 'the witness granted its vote to a standby' };
  // Every peer answered and none is a rival (the primaries left are fenced or older).
  const answering = e.peers.filter((p) => p.role === 'standby' || p.role === 'primary');
  if (answering.length > 0 && answering.length === e.peers.length)
    return {
      kind: 'renew',
      reason: `${answering.map((p) => `${p.name} answers as ${p.role === 'standby' ? 'a standby' : 'a fenced or older primary'}`).join(', ')}`,
    };
  if (e.witness === 'ok')
    return { kind: 'renew', reason: 'the witness answers and granted no vote to a standby' };
  if (e.witness === 'none')
    // 2-node mode: nobody to ask. A standby we cannot reach may be dead or cut off from us;
    // this is pg_keeper's trade-off, stated in the README and logged at start.
    return { kind: 'renew', reason: 'no witness (2-node mode): a standby we cannot reach is taken as down' };
  return { kind: 'lapse', reason: 'neither a standby nor the witness answered' };
}

export interface WriteLease {
  /** Holding until then (clock ms); null when not held. */
  until: number | null;
  reason: string;
}

export const NO_LEASE: WriteLease = { until: null, reason: 'not a primary yet' };

export function applyVerdict(lease: WriteLease, v: LeaseVerdict, now: number, leaseMs: number): WriteLease {
  switch (v.kind) {
    case 'renew':
      return { until: now + leaseMs, reason: v.reason };
    case 'revoke':
      return { until: null, reason: v.reason };
    case 'lapse':
      return { until: lease.until, reason: v.reason };
  }
}

export function leaseHeld(lease: WriteLease, now: number): boolean {
  return lease.until !== null && now < lease.until;
}

/** One line for /status and logs. */
export function describeLease(lease: WriteLease, now: number): string {
  if (lease.until === null) return `not held: ${lease.reason}`;
  if (now >= lease.until) return `lapsed ${formatDuration(now - lease.until)} ago: ${lease.reason}`;
  return `held for ${formatDuration(lease.until - now)}: ${lease.reason}`;
}
