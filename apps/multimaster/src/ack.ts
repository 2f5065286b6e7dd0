import type { Lsn } from '@pgfleet/wal';

/** What the edge knows when it reports its position to the source. */
export interface AckFacts {
  /** Origin progress on the target known to be flushed to disk (pg_replication_origin_progress(origin, true)). */
  durable: Lsn;
  /** end_lsn of the last transaction committed on the target (maybe not yet flushed). */
  lastApplied: Lsn;
  /** Largest end_lsn of any transaction fully handled: applied, or skipped (echo, empty, dead-lettered). */
  lastHandled: Lsn;
  /** A transaction is open (begin seen, commit not yet confirmed) or messages wait in the queue. */
  inFlight: boolean;
  /** Server WAL end from the last keepalive that arrived after every message before it was handled, or null. */
  keepalive: Lsn | null;
  /** Position already reported; the answer never goes backwards. */
  previous: Lsn;
}

const max = (a: Lsn, b: Lsn): Lsn => (a > b ? a : b);
const min = (a: Lsn, b: Lsn): Lsn => (a < b ? a : b);

/**
 * The flush position to report to the source. Never beyond the end of a transaction that
 * is durable on the target: if the target crashes, the source must still hold everything
 * after what the target kept. Positions past skipped transactions or a keepalive are only
 * safe when nothing is in flight and every applied transaction is durable.
 */
export function ackPosition(f: AckFacts): Lsn {
  let pos = min(f.durable, f.lastApplied);
  if (!f.inFlight && f.durable >= f.lastApplied) {
    pos = max(pos, f.lastHandled);
    if (f.keepalive !== null) pos = max(pos, f.keepalive);
  }
  return max(pos, f.previous);
}
