import type { Lsn } from '@pgfleet/wal';
import type { DeadLetterRow } from './dead-letter-recorder.js';
import type { TargetTable } from './target-table.js';

export type SkipReason = 'echo' | 'empty' | 'dead_letter' | 'operator';

/** What the applier tells the edge. */
export type ApplyEvent =
  /** Transactions committed on the target, in source order; `endLsn` and `commitTs` are the last one's. */
  | { type: 'applied'; transactions: number; rows: number; endLsn: Lsn; commitTs: bigint }
  /**
   * A transaction handled without applying it: `echo` (it carries an origin, so a
   * replicator applied it on the source), `empty` (no change for us), `dead_letter`
   * (refused and recorded), `operator` (skipped by `pgfleet-mm skip`).
   */
  | { type: 'skipped'; endLsn: Lsn; reason: SkipReason };

/** A record the applier needs written outside its own transaction, which is rolled back or retried. */
export type OutsideRecord =
  /** pause_edge keeps retrying the transaction, so the record is de-duplicated. */
  | { type: 'paused_dead_letter'; row: DeadLetterRow }
  /** A conflict resolved as `error`: pgfleet.conflicts values (CONFLICT_INSERT_SQL order), recorded once. */
  | { type: 'error_conflict'; values: unknown[] };

/**
 * Everything the applier needs from the edge that runs it, and everything it reports: the
 * one seam between them. The edge answers on its control connection (the applier owns the
 * apply connection) and feeds the applier from its replication stream.
 */
export interface ApplyPort {
  /** Columns and row key of a target table (null when it does not exist). */
  loadTargetTable(schema: string, table: string): Promise<TargetTable | null>;
  /** Whether an operator asked to skip the transaction committed at `commitLsn` (`pgfleet-mm skip`). */
  skipRequested(commitLsn: Lsn): Promise<boolean>;
  recordOutside(record: OutsideRecord): Promise<void>;
  report(event: ApplyEvent): void;
  /** Flow control: stop and restart delivering stream messages (bounds what waits in memory). */
  pause(): void;
  resume(): void;
}
