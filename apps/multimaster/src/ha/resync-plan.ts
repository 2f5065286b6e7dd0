/**
 * Pure decisions of the re-sync that carries a failed-over node's window to a peer when no
 * slot survived the failover (PostgreSQL 15/16, or a 17 slot that was not sync-ready).
 */

/** A row of the new primary, last changed locally, with its commit timestamp (µs since 2000). */
export interface WindowRow {
  table: number;
  commitTs: bigint;
  values: Array<string | null>;
}

/** One source transaction to apply on the peer: every window row sharing a commit timestamp. */
export interface WindowTransaction {
  commitTs: bigint;
  rows: WindowRow[];
}

/**
 * Groups window rows into transactions by commit timestamp (every row of one source
 * transaction, subtransactions included, carries the same one), oldest first, so the peer
 * sees them in the order they committed.
 */
export function groupByCommit(rows: readonly WindowRow[]): WindowTransaction[] {
  const by = new Map<bigint, WindowRow[]>();
  for (const r of rows) {
    const list = by.get(r.commitTs);
    if (list) list.push(r);
    else by.set(r.commitTs, [r]);
  }
  return [...by.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([commitTs, list]) => ({ commitTs, rows: list }));
}

/**
 * Start of the window: `margin` before the newest row the peer holds from the failed node
 * (whose commit is at or before the peer's origin progress), or everything when it holds
 * none. Commit timestamps follow commit order only up to the time between taking the
 * timestamp and writing the commit record, and the two servers' clocks may differ: the
 * margin covers both.
 */
export function windowStart(peerNewest: bigint | null, marginUs: bigint): bigint | null {
  return peerNewest === null ? null : peerNewest - marginUs;
}

/** What the peer's row says about a window row of the same key. */
export interface PeerRow {
  /** Last changed through the failed node's own origin (its edge, or a dead-letter replay). */
  own: boolean;
  commitTs: bigint | null;
}

/**
 * - no row on the peer: insert it;
 * - the peer's row came from the failed node: skip it when the peer has this version or a
 *   newer one (nothing is applied twice), else overwrite it (an update the peer missed);
 * - the peer's row came from elsewhere: an insert meeting it, i.e. an insert_exists
 *   conflict resolved by the table's policy and recorded, as the stream would have.
 */
export function resyncAction(peer: PeerRow | null, commitTs: bigint): 'insert' | 'update' | 'skip' {
  if (peer === null) return 'insert';
  if (!peer.own) return 'insert';
  if (peer.commitTs !== null && peer.commitTs >= commitTs) return 'skip';
  return 'update';
}
