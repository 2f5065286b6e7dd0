import { formatBytes, formatDuration } from './units.js';

/**
 * Standby mode's one question: promote now, keep waiting, or refuse (and say why)?
 * Pure: facts in, action + reason out. The loop gathers the facts (probe of the primary,
 * local replay state, the witness's vote) and carries the action out.
 */

/** What this standby last learned about its own synchronous status from the primary. */
export type SyncObservation = 'sync' | 'async' | 'degraded' | 'unknown';

/** Outcome of asking the witness. 'none': no witness configured (2-node mode). */
export type WitnessVote = 'none' | 'not-asked' | 'granted' | 'denied' | 'unreachable';

export interface StandbyPolicy {
  failures: number;
  intervalMs: number;
  startupGraceMs: number;
  maxLagOnFailover: number;
  /** The primary's fenceAfter; with a witness we wait until it must have fenced itself. */
  fenceAfterMs: number;
  /** True when synchronous_standby_names is configured for the pair. */
  syncRequired: boolean;
}

/** Probe bookkeeping carried from one iteration to the next. */
export interface PrimaryWatch {
  consecutiveFailures: number;
  primarySeenOnce: boolean;
  lastSeenAt?: number;
  lastError?: string;
}

export const INITIAL_WATCH: PrimaryWatch = { consecutiveFailures: 0, primarySeenOnce: false };

/** Folds one probe result into the watch. */
export function observePrimaryProbe(
  watch: PrimaryWatch,
  probe: { ok: true } | { ok: false; error: string },
  now: number,
): PrimaryWatch {
  if (probe.ok) return { consecutiveFailures: 0, primarySeenOnce: true, lastSeenAt: now };
  return { ...watch, consecutiveFailures: watch.consecutiveFailures + 1, lastError: probe.error };
}

export interface StandbyFacts {
  now: number;
  startedAt: number;
  primaryReachable: boolean;
  watch: PrimaryWatch;
  /**
   * WAL this standby would lack if promoted now: the largest of (received − replayed) and
   * (last LSN seen on the primary − replayed). null when it could not be measured.
   */
  lagBytes: bigint | null;
  replayPaused: boolean;
  /** Operator pause (`pgfleet-keeper pause`): no automatic action at all. */
  keeperPaused: boolean;
  /** The primary's own keeper told us its server is gone (fast path): one failed probe suffices. */
  peerReportedDown: boolean;
  sync: SyncObservation;
  witness: WitnessVote;
  witnessDetail?: string;
}

export type StandbyAction =
  | { kind: 'wait'; reason: string }
  | { kind: 'ask-witness'; reason: string }
  | { kind: 'promote'; reason: string }
  | { kind: 'blocked'; reason: string; gates: string[] };

export function decideStandby(f: StandbyFacts, p: StandbyPolicy): StandbyAction {
  if (f.keeperPaused) return { kind: 'wait', reason: 'keeper paused by operator' };
  if (f.primaryReachable) return { kind: 'wait', reason: 'primary reachable' };

  const needed = f.peerReportedDown ? 1 : p.failures;
  const n = f.watch.consecutiveFailures;
  const unreachable = `primary unreachable ${Math.min(n, needed)}/${needed}${f.peerReportedDown ? ' (its keeper reported it down)' : ''}`;
  if (n < needed) return { kind: 'wait', reason: unreachable };

  const gates: string[] = [];
  if (!f.watch.primarySeenOnce) {
    const left = p.startupGraceMs - (f.now - f.startedAt);
    if (left > 0)
      gates.push(
        `primary never seen since start (startupGrace ${formatDuration(p.startupGraceMs)}, ${formatDuration(left)} left)`,
      );
  }
  if (f.lagBytes === null) gates.push('replay lag unknown');
  else if (f.lagBytes > BigInt(p.maxLagOnFailover))
    gates.push(`replay lag ${formatBytes(f.lagBytes)} > maxLagOnFailover ${formatBytes(p.maxLagOnFailover)}`);
  if (f.replayPaused) gates.push('replay is paused on this standby');
  if (p.syncRequired && f.watch.primarySeenOnce && f.sync !== 'sync') {
    const why =
      f.sync === 'degraded'
        ? 'the primary had degraded synchronous replication'
        : f.sync === 'async'
          ? 'this standby was not synchronous'
          : 'its synchronous status is unknown';
    gates.push(`not promotable: ${why} at last contact, it may miss acknowledged commits`);
  }
  if (f.witness !== 'none' && !f.peerReportedDown) {
    // The primary fences itself after fenceAfter without standby and witness; promoting
    // before that deadline (plus one of its iterations) could leave two writers.
    const since = f.now - (f.watch.lastSeenAt ?? f.startedAt);
    const deadline = p.fenceAfterMs + p.intervalMs;
    if (since < deadline)
      gates.push(`waiting for the primary's fence deadline (${formatDuration(deadline - since)} left)`);
  }

  const lag = f.lagBytes === null ? 'lag unknown' : `lag ${formatBytes(f.lagBytes)}`;
  if (gates.length > 0)
    return { kind: 'blocked', reason: `not promoting: ${unreachable}, ${gates.join('; ')}`, gates };

  switch (f.witness) {
    case 'none':
      return {
        kind: 'promote',
        reason: `promoting: ${unreachable}, ${lag}, gates passed (no witness: 2-node mode)`,
      };
    case 'not-asked':
      return { kind: 'ask-witness', reason: `${unreachable}, ${lag}, gates passed; asking the witness` };
    case 'granted':
      return {
        kind: 'promote',
        reason: `promoting: ${unreachable}, ${lag}, gates passed, witness granted its vote`,
      };
    case 'denied': {
      const gate = `witness denied its vote${f.witnessDetail ? `: ${f.witnessDetail}` : ''}`;
      return { kind: 'blocked', reason: `not promoting: ${unreachable}, ${gate}`, gates: [gate] };
    }
    case 'unreachable': {
      const gate = `witness unreachable${f.witnessDetail ? `: ${f.witnessDetail}` : ''}`;
      return { kind: 'blocked', reason: `not promoting: ${unreachable}, ${gate}`, gates: [gate] };
    }
  }
}
