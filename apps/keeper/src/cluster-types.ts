import type { Lsn } from '@pgfleet/wal';

/**
 * Facts about an N-node cluster that the DCS stores and the N-node decisions read: the
 * vocabulary shared by dcs/, candidate-decision.ts and sync-decision.ts.
 */

/** Per-node tags, published in the node's member key (Patroni's `nofailover`, `failover_priority`). */
export interface MemberTags {
  /** Never promote this node automatically (it may still vote in the quorum check). */
  noFailover: boolean;
  /**
   * Among candidates with equal WAL positions the higher priority wins. 0 means never promote,
   * like `noFailover` (Patroni 3.2+ semantics).
   */
  failoverPriority: number;
}

export const DEFAULT_TAGS: Readonly<MemberTags> = Object.freeze({ noFailover: false, failoverPriority: 1 });

/**
 * What the primary promises about every commit it has acknowledged, kept in the DCS (the
 * `sync` key) so that the standbys can check it when the primary is gone: every acknowledged
 * commit is on at least `minAcks` of `voters`. Patroni's `/sync` key states the same promise as
 * `quorum = |voters| - minAcks`.
 *
 * The primary's keeper writes it before it makes `synchronous_standby_names` weaker and only
 * after a stronger one is confirmed (sync-decision.ts), so it never promises more than holds.
 * `minAcks = 0` promises nothing: the primary ran with fewer synchronous standbys than
 * configured (degraded) and may hold commits no standby has.
 */
export interface SyncRecord {
  /** The primary the promise is about. */
  leader: string;
  /** Standby names (application_name), sorted. */
  voters: string[];
  minAcks: number;
}

/** One switch of timeline, in order: what `history` lists (Patroni's /history). */
export interface TimelineSwitch {
  /** The new timeline. */
  timeline: number;
  /** Where the previous timeline ended (null when unknown). */
  switchLsn: Lsn | null;
  /** Why: 'failover: primary a unreachable for 3 s', 'switchover to b requested by operator'. */
  reason: string;
  /** ISO 8601 time of the promotion. */
  at: string;
  /** The node promoted. */
  leader: string;
  /** The primary before it, when known. */
  previousLeader: string | null;
}
