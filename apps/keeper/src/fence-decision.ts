import { formatDuration } from './units.js';

/**
 * "Never two writers", from the primary's side: when to fence with SQL. A primary fences
 * itself (read-only + client backends terminated) when its peer was promoted on a newer
 * timeline, when the witness granted its vote to the peer, or, with a witness, when it
 * reached neither the standby nor the witness for fenceAfter (shorter than the standby's
 * promotion deadline, so an isolated primary is read-only before the other side may promote).
 * How: primary-guard.ts (lease first, escalation when SQL cannot be confirmed); a server that
 * takes no new connection at all is server-watch-decision.ts's. Pure: facts in, action out.
 */

export type PeerRole = 'primary' | 'standby' | 'down' | 'unknown';

export interface FencePolicy {
  witnessConfigured: boolean;
  fenceAfterMs: number;
}

export interface FenceFacts {
  now: number;
  startedAt: number;
  fenced: boolean;
  myTimeline: number | null;
  peerRole: PeerRole;
  peerTimeline: number | null;
  /** Last time the standby's server (or keeper) answered. */
  lastStandbyContactAt: number | null;
  /** Last time the witness answered a heartbeat. */
  lastWitnessContactAt: number | null;
  /** The witness's last answer said it granted its vote to the peer. */
  witnessGrantedToPeer: boolean;
  /** Switchover in progress: the keeper fenced on purpose and must not unfence. */
  holdFence: boolean;
}

export type FenceAction =
  | { kind: 'none'; reason: string }
  | { kind: 'fence'; reason: string }
  | { kind: 'unfence'; reason: string };

export function decideFence(f: FenceFacts, p: FencePolicy): FenceAction {
  const newerPeer =
    f.peerRole === 'primary' &&
    f.peerTimeline !== null &&
    (f.myTimeline === null || f.peerTimeline > f.myTimeline);
  if (newerPeer) {
    const reason = `peer is primary on newer timeline ${f.peerTimeline} > ${f.myTimeline ?? '?'}`;
    return f.fenced
      ? { kind: 'none', reason: `fenced: ${reason}` }
      : { kind: 'fence', reason: `fencing: ${reason}` };
  }
  if (f.witnessGrantedToPeer)
    return f.fenced
      ? { kind: 'none', reason: 'fenced: the witness granted its vote to the peer' }
      : { kind: 'fence', reason: 'fencing: the witness granted its vote to the peer' };

  if (p.witnessConfigured && !f.fenced) {
    const last = Math.max(
      f.lastStandbyContactAt ?? f.startedAt,
      f.lastWitnessContactAt ?? f.startedAt,
      f.startedAt,
    );
    const isolated = f.now - last;
    if (isolated >= p.fenceAfterMs)
      return {
        kind: 'fence',
        reason: `fencing: neither standby nor witness reachable for ${formatDuration(isolated)} (fenceAfter ${formatDuration(p.fenceAfterMs)})`,
      };
  }

  if (f.fenced) {
    if (f.holdFence) return { kind: 'none', reason: 'fenced on purpose (switchover)' };
    if (f.peerRole === 'standby')
      return { kind: 'unfence', reason: 'unfencing: the peer is a standby, this is still the only primary' };
    if (f.peerRole === 'primary')
      return { kind: 'none', reason: 'fenced: peer is also primary on the same or an older timeline' };
    if (
      p.witnessConfigured &&
      f.lastWitnessContactAt !== null &&
      f.now - f.lastWitnessContactAt < p.fenceAfterMs
    )
      return {
        kind: 'unfence',
        reason:
          'unfencing: the witness answers and granted no vote to the peer, this is still the only primary',
      };
    return { kind: 'none', reason: 'fenced: cannot confirm this is the only primary' };
  }
  return { kind: 'none', reason: 'not fenced' };
}
