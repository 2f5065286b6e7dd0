import type { Lsn } from '@pgfleet/wal';
import { shouldSkipTransaction } from '../origin-filter.js';

/**
 * How a source transaction is applied, decided at its first change:
 * - `echo`: it carries an origin (a replicator applied it on the source): skipped;
 * - `dead`: the edge restarted to record it whole as a dead letter (skip_transaction);
 * - `careful`: the edge restarted to replay it change by change after it failed;
 * - `fast`: set-based, batched with its neighbours or streamed when large.
 */
export type Route = 'echo' | 'dead' | 'careful' | 'fast';

export interface RouteFacts {
  origin: string | null;
  finalLsn: Lsn;
  deadLetterCommitLsn: Lsn | null;
  carefulCommitLsn: Lsn | null;
}

export function routeTransaction(f: RouteFacts): Route {
  if (shouldSkipTransaction(f.origin)) return 'echo';
  if (f.deadLetterCommitLsn !== null && f.finalLsn === f.deadLetterCommitLsn) return 'dead';
  if (f.carefulCommitLsn !== null && f.finalLsn === f.carefulCommitLsn) return 'careful';
  return 'fast';
}

/** When a transaction being received stops being held whole and is streamed statement by statement. */
export interface StreamLimits {
  rows: number;
  bytes: number;
  groups: number;
}

export function shouldStream(
  tx: { rows: number; bytes: number; groups: number },
  limits: StreamLimits,
): boolean {
  return tx.rows > limits.rows || tx.bytes > limits.bytes || tx.groups > limits.groups;
}
