import { formatLsn, type Lsn, lsnDiff, maxLsn } from '@pgfleet/wal';
import type { MemberTags, SyncRecord } from './cluster-types.js';
import { formatBytes } from './units.js';

/**
 * Which standby should replace a failed primary in an N-node cluster? Pure: facts about every
 * member (from their member keys and fresh direct answers) in, a ranking with reasons out.
 * Each standby's keeper runs it and races for the leader key only when it ranks first; the
 * etcd transaction settles the rare case where two see themselves first.
 *
 * A candidate must be reachable, a standby, not tagged away from failover, streaming from the
 * primary until it failed, on the cluster's timeline, within maxLagOnFailover of the primary's
 * last published position and, under quorum commit, certain to hold every acknowledged commit.
 * The best is the one with the highest WAL position (received or replayed), then the highest
 * failoverPriority, then the lowest name (so every keeper that sees the same facts agrees).
 *
 * The quorum rule (Patroni 4, ha.py `_is_healthiest_node` with quorum.py's /sync key, and
 * docs/replication_modes.rst "Quorum commit mode"): the primary promised, in the DCS, that every
 * commit it acknowledged is on at least `minAcks` of `voters`. Any `|voters| - minAcks + 1` of the
 * voters therefore include one that holds every acknowledged commit (pigeonhole). A candidate is
 * safe when that many voters are reachable and report a WAL position not ahead of its own (the
 * candidate counts itself when it is a voter): the one among them holding everything is at or
 * below the candidate, so the candidate holds everything too. Patroni states it as "quorum votes
 * >= quorum" with `quorum = |voters| - minAcks` and votes starting at 0 for a voter, -1 for a
 * non-voter. Voters ahead of the candidate do not vote for it; unreachable ones cannot.
 * `minAcks = 0` promises nothing (the primary ran degraded): nobody is safe automatically.
 */

export interface CandidateFacts {
  name: string;
  /** Answered (its keeper or its server) in this round: its position is current, not cached. */
  reachable: boolean;
  role: 'primary' | 'standby' | 'down' | 'unknown';
  timeline: number | null;
  receivedLsn: Lsn | null;
  replayedLsn: Lsn | null;
  /** Its walreceiver streamed from the failed primary at the last observation before the failure. */
  streamingAtFailure: boolean;
  tags: MemberTags;
}

export interface CandidateInput {
  /** Every member known (the failed primary included when known: a reachable primary stops everything). */
  members: readonly CandidateFacts[];
  /** The primary that failed. */
  formerLeader: string;
  /** Its last published WAL position (member key's walLsn), for the lag check; null when never seen. */
  lastPrimaryLsn: Lsn | null;
  /** The cluster's timeline (the former primary's, or the history's last entry). */
  clusterTimeline: number | null;
  /** Quorum commit configured (syncCount > 0): the sync promise must be checked. */
  synchronous: boolean;
  /** The promise from the DCS `sync` key (null when absent). */
  sync: SyncRecord | null;
  maxLagOnFailover: number;
  /**
   * An operator's `failover --candidate`: only this member may be chosen. With `force`, lag,
   * streaming and quorum checks are skipped (the operator accepted losing commits).
   */
  requested?: { name: string; force: boolean };
}

export interface RankedCandidate {
  name: string;
  lsn: Lsn;
  failoverPriority: number;
}

export interface CandidateDecision {
  /** The member to promote, or null when none is safe. */
  best: string | null;
  /** Every eligible member, best first. */
  ranking: RankedCandidate[];
  /** Every other member with the reason it cannot be promoted now. */
  excluded: { name: string; reason: string }[];
  reason: string;
}

/** The WAL a standby would keep on promotion: everything it received, or replayed if further. */
export function walPosition(m: Pick<CandidateFacts, 'receivedLsn' | 'replayedLsn'>): Lsn | null {
  const known = [m.receivedLsn, m.replayedLsn].filter((l): l is Lsn => l !== null);
  return known.length ? maxLsn(known[0]!, ...known.slice(1)) : null;
}

export function selectCandidate(input: CandidateInput): CandidateDecision {
  const livePrimary = input.members.find((m) => m.reachable && m.role === 'primary');
  if (livePrimary) {
    return {
      best: null,
      ranking: [],
      excluded: [],
      reason: `${livePrimary.name} is a running primary: no failover while it answers`,
    };
  }
  const ranking: RankedCandidate[] = [];
  const excluded: { name: string; reason: string }[] = [];
  for (const m of input.members) {
    if (m.name === input.formerLeader) continue;
    if (input.requested && m.name !== input.requested.name) {
      excluded.push({ name: m.name, reason: `not the requested candidate ${input.requested.name}` });
      continue;
    }
    const why = ineligibility(m, input);
    if (why) excluded.push({ name: m.name, reason: why });
    else ranking.push({ name: m.name, lsn: walPosition(m)!, failoverPriority: m.tags.failoverPriority });
  }
  ranking.sort(
    (a, b) =>
      (a.lsn === b.lsn ? 0 : a.lsn > b.lsn ? -1 : 1) ||
      b.failoverPriority - a.failoverPriority ||
      a.name.localeCompare(b.name),
  );
  const best = ranking[0];
  if (!best) {
    const requested = input.requested && !input.members.some((m) => m.name === input.requested?.name);
    return {
      best: null,
      ranking,
      excluded,
      reason: requested
        ? `requested candidate ${input.requested?.name} is not a known member`
        : `no standby can be promoted safely${excluded.length ? `: ${excluded.map((e) => `${e.name}: ${e.reason}`).join('; ')}` : ''}`,
    };
  }
  const runnerUp = ranking[1];
  return {
    best: best.name,
    ranking,
    excluded,
    reason:
      `${best.name} at ${formatLsn(best.lsn)}` +
      (runnerUp
        ? runnerUp.lsn === best.lsn
          ? ', ties broken by failoverPriority then name'
          : ', the furthest'
        : '') +
      (input.requested ? ' (requested by the operator)' : ''),
  };
}

function ineligibility(m: CandidateFacts, input: CandidateInput): string | null {
  if (!m.reachable) return 'unreachable';
  if (m.role !== 'standby') return `not a running standby (${m.role})`;
  if (m.tags.noFailover) return 'tagged noFailover';
  if (m.tags.failoverPriority <= 0) return 'failoverPriority 0';
  const lsn = walPosition(m);
  if (lsn === null) return 'reports no WAL position';
  if (input.clusterTimeline !== null && (m.timeline === null || m.timeline < input.clusterTimeline)) {
    return `on timeline ${m.timeline ?? 'unknown'}, behind the cluster's ${input.clusterTimeline}`;
  }
  if (input.requested?.force) return null;
  if (!m.streamingAtFailure) return `was not streaming from ${input.formerLeader} when it failed`;
  if (input.lastPrimaryLsn !== null) {
    const lag = lsnDiff(input.lastPrimaryLsn, lsn);
    if (lag > BigInt(input.maxLagOnFailover)) {
      return `${formatBytes(lag)} behind ${input.formerLeader}'s last position (maxLagOnFailover ${formatBytes(input.maxLagOnFailover)})`;
    }
  }
  if (input.synchronous) return quorumShortfall(m, lsn, input);
  return null;
}

/** Null when `m` provably holds every acknowledged commit; else why not. */
function quorumShortfall(m: CandidateFacts, lsn: Lsn, input: CandidateInput): string | null {
  const sync = input.sync;
  if (!sync) return `no synchronous-commit promise from ${input.formerLeader} in the DCS`;
  if (sync.leader !== input.formerLeader) {
    return `the synchronous-commit promise is from ${sync.leader}, not from ${input.formerLeader}`;
  }
  if (sync.minAcks <= 0) {
    return `${input.formerLeader} ran without enough synchronous standbys: commits it acknowledged may exist only on it`;
  }
  const voters = new Set(sync.voters.map((v) => v.toLowerCase()));
  const needed = voters.size - sync.minAcks + 1;
  const selfVote = voters.has(m.name.toLowerCase()) ? 1 : 0;
  const others = input.members.filter(
    (o) =>
      o.name !== m.name &&
      voters.has(o.name.toLowerCase()) &&
      o.reachable &&
      o.role === 'standby' &&
      o.timeline === m.timeline &&
      (walPosition(o) ?? lsn + 1n) <= lsn,
  );
  const votes = selfVote + others.length;
  if (votes >= needed) return null;
  return (
    `cannot prove it holds every acknowledged commit: ${votes} of ${voters.size} voters ` +
    `(${[...sync.voters].join(', ')}) confirm a position at or below ${formatLsn(lsn)}, ` +
    `${needed} needed (every commit is on ${sync.minAcks} of them)`
  );
}
