import { formatBytes } from './units.js';

/**
 * Primary mode's question: is the standby healthy enough to keep (or put back) synchronous
 * replication on? Degrading when it is gone or stalled keeps commits from hanging; restoring
 * when it streams again with little lag gives durability back. Pure: facts in, action out.
 */

export interface PrimaryPolicy {
  failures: number;
  /** The pair's configured synchronous_standby_names; '' means an async pair. */
  syncStandbyNames: string;
  syncRestoreLag: number;
}

/** The standby's row in pg_stat_replication (null when it has none). */
export interface ReplicationRowFacts {
  state: string;
  syncState: string;
}

/** The standby server's own view, when the primary keeper could query it. */
export interface StandbyReplayFacts {
  replayLsn: bigint | null;
  receiveLsn: bigint | null;
  paused: boolean;
}

export interface PrimaryFacts {
  keeperPaused: boolean;
  /** synchronous_standby_names as the server has it now; '' after a degrade. */
  currentSyncNames: string;
  standbyReachable: boolean;
  /** The peer answers as a primary (promoted): releasing waiting commits would ack writes it never sees. */
  peerIsPrimary?: boolean;
  standbyError?: string;
  row: ReplicationRowFacts | null;
  standby: StandbyReplayFacts | null;
  primaryLsn: bigint | null;
}

/** Health bookkeeping carried between iterations. */
export interface StandbyWatch {
  consecutiveFailures: number;
  lastReplayLsn: bigint | null;
  lastProblem?: string;
}

export const INITIAL_STANDBY_WATCH: StandbyWatch = { consecutiveFailures: 0, lastReplayLsn: null };

export type PrimaryAction =
  | { kind: 'none'; reason: string }
  | { kind: 'degrade'; reason: string }
  | { kind: 'restore'; reason: string; names: string };

/** True when sync replication is configured but the server runs with it switched off. */
export function isDegraded(policy: PrimaryPolicy, currentSyncNames: string): boolean {
  return policy.syncStandbyNames !== '' && currentSyncNames.trim() === '';
}

/**
 * What is wrong with the standby this iteration (null: nothing). A stall is replay not
 * advancing since the previous iteration while the primary is ahead of it; the caller turns
 * `failures` such iterations into "stalled for failures × interval".
 */
export function standbyProblem(f: PrimaryFacts, watch: StandbyWatch, expectSync: boolean): string | null {
  if (!f.standbyReachable) return `standby server unreachable${f.standbyError ? ` (${f.standbyError})` : ''}`;
  if (!f.row) return 'standby not streaming (no pg_stat_replication row)';
  if (f.row.state !== 'streaming') return `standby not streaming (state ${f.row.state})`;
  if (expectSync && f.row.syncState !== 'sync' && f.row.syncState !== 'quorum')
    return `standby streams but is not synchronous (sync_state ${f.row.syncState}; does syncStandbyNames name its application_name?)`;
  if (f.standby) {
    if (f.standby.paused) return 'replay paused on the standby';
    const replay = f.standby.replayLsn;
    if (
      replay !== null &&
      watch.lastReplayLsn !== null &&
      replay <= watch.lastReplayLsn &&
      f.primaryLsn !== null &&
      f.primaryLsn > replay
    )
      return `standby replay stalled at ${formatBytes(f.primaryLsn - replay)} behind while the primary's WAL advances`;
  }
  return null;
}

export function observeStandby(watch: StandbyWatch, f: PrimaryFacts, policy: PrimaryPolicy): StandbyWatch {
  const expectSync = policy.syncStandbyNames !== '' && !isDegraded(policy, f.currentSyncNames);
  const problem = standbyProblem(f, watch, expectSync);
  const replay = f.standby?.replayLsn ?? watch.lastReplayLsn;
  if (problem === null) return { consecutiveFailures: 0, lastReplayLsn: replay };
  return { consecutiveFailures: watch.consecutiveFailures + 1, lastReplayLsn: replay, lastProblem: problem };
}

/**
 * `watch` must already include this iteration (see observeStandby). The restore lag is the
 * primary's current LSN minus what the standby has replayed (measured on the standby).
 */
export function decidePrimary(f: PrimaryFacts, watch: StandbyWatch, p: PrimaryPolicy): PrimaryAction {
  if (p.syncStandbyNames === '') return { kind: 'none', reason: 'asynchronous pair: nothing to degrade' };
  if (f.keeperPaused) return { kind: 'none', reason: 'keeper paused by operator' };
  if (f.peerIsPrimary)
    // Degrading now would release commits waiting for a standby that is gone for good: they
    // would be acknowledged on this server while another one takes the writes.
    return { kind: 'none', reason: 'peer answers as a primary: never degrading synchronous replication now' };
  const degraded = isDegraded(p, f.currentSyncNames);
  if (!degraded) {
    if (watch.consecutiveFailures >= p.failures)
      return {
        kind: 'degrade',
        reason: `degrading synchronous replication: ${watch.lastProblem ?? 'standby failing'} ${watch.consecutiveFailures}/${p.failures}`,
      };
    if (watch.consecutiveFailures > 0)
      return { kind: 'none', reason: `${watch.lastProblem} ${watch.consecutiveFailures}/${p.failures}` };
    return { kind: 'none', reason: 'standby streaming synchronously' };
  }
  if (watch.consecutiveFailures > 0)
    return { kind: 'none', reason: `degraded, not restoring: ${watch.lastProblem ?? 'standby failing'}` };
  const replay = f.standby?.replayLsn ?? null;
  if (replay === null || f.primaryLsn === null)
    return { kind: 'none', reason: 'degraded, not restoring: standby replay position unknown' };
  const lag = f.primaryLsn > replay ? f.primaryLsn - replay : 0n;
  if (lag > BigInt(p.syncRestoreLag))
    return {
      kind: 'none',
      reason: `degraded, standby catching up: lag ${formatBytes(lag)} > syncRestoreLag ${formatBytes(p.syncRestoreLag)}`,
    };
  return {
    kind: 'restore',
    reason: `restoring synchronous replication: standby streaming, lag ${formatBytes(lag)} ≤ syncRestoreLag ${formatBytes(p.syncRestoreLag)}`,
    names: p.syncStandbyNames,
  };
}
