import type { Lsn } from '@pgfleet/wal';

export interface AppliedRun {
  transactions: number;
  rows: number;
  /** End LSN and commit time of the last of them. */
  endLsn: Lsn;
  commitTs: bigint;
}

/**
 * The one record of what the apply has sent, what committed and what may be acknowledged,
 * shared by every path (batched calls, streamed transactions, change-by-change replays).
 * Entries are kept in source commit order, which is also the order the target commits
 * them in (one apply session), so "committed through end LSN x" confirms a prefix.
 */
export class CommitLedger {
  /**
   * The unconfirmed transactions, oldest at `head`: end LSN, commit time and rows in typed
   * arrays, so that a transaction held until its call returns is no object for the
   * collector to copy out of its young generation.
   */
  private ends = new BigUint64Array(1024);
  private stamps = new BigInt64Array(1024);
  private rowCounts = new Float64Array(1024);
  private head = 0;
  private tail = 0;
  private waiters: Array<{ below: number; resolve: () => void }> = [];
  /** End LSN of the last transaction known committed on the target. */
  lastApplied: Lsn;
  /** Largest end LSN of any transaction fully handled: committed, or skipped (echo, empty, dead letter). */
  lastHandled: Lsn;
  lastCommitTs: bigint | null = null;

  constructor(
    start: Lsn,
    private readonly onApplied: (run: AppliedRun) => void,
  ) {
    this.lastApplied = start;
    this.lastHandled = start;
  }

  /** Sent and not yet confirmed. */
  get size(): number {
    return this.tail - this.head;
  }

  /** End LSN of the oldest unconfirmed transaction, if any. */
  oldestEnd(): Lsn | undefined {
    return this.head < this.tail ? (this.ends[this.head] as Lsn) : undefined;
  }

  /** A transaction was sent to the target (in source commit order). */
  sent(endLsn: Lsn, commitTs: bigint, rows: number): void {
    if (this.tail === this.ends.length) this.makeRoom();
    this.ends[this.tail] = endLsn;
    this.stamps[this.tail] = commitTs;
    this.rowCounts[this.tail] = rows;
    this.tail++;
  }

  /** Moves the unconfirmed ones to the front, and doubles the arrays when they are more than half full. */
  private makeRoom(): void {
    const n = this.size;
    const grow = n * 2 > this.ends.length;
    const ends = grow ? new BigUint64Array(this.ends.length * 2) : this.ends;
    const stamps = grow ? new BigInt64Array(ends.length) : this.stamps;
    const rowCounts = grow ? new Float64Array(ends.length) : this.rowCounts;
    ends.set(this.ends.subarray(this.head, this.tail));
    stamps.set(this.stamps.subarray(this.head, this.tail));
    rowCounts.set(this.rowCounts.subarray(this.head, this.tail));
    this.ends = ends;
    this.stamps = stamps;
    this.rowCounts = rowCounts;
    this.head = 0;
    this.tail = n;
  }

  /** Every sent transaction ending at or before `endLsn` committed (a call that returned, origin progress). */
  confirmThrough(endLsn: Lsn): void {
    const from = this.head;
    let rows = 0;
    while (this.head < this.tail && (this.ends[this.head] as bigint) <= endLsn) {
      rows += this.rowCounts[this.head] as number;
      this.head++;
    }
    const n = this.head - from;
    if (n === 0) return;
    const lastEnd = this.ends[this.head - 1] as Lsn;
    const commitTs = this.stamps[this.head - 1] as bigint;
    if (this.head === this.tail) this.head = this.tail = 0;
    this.lastApplied = lastEnd;
    if (lastEnd > this.lastHandled) this.lastHandled = lastEnd;
    this.lastCommitTs = commitTs;
    this.onApplied({ transactions: n, rows, endLsn: lastEnd, commitTs });
    this.wake();
  }

  /**
   * A target transaction committed that moved origin progress without applying data (a
   * dead letter recorded, an operator skip, the source's view recorded after echoes); it
   * is reported by its caller, not as applied. Nothing else is in flight then.
   */
  committedWithoutData(endLsn: Lsn, commitTs: bigint): void {
    this.lastApplied = endLsn;
    if (endLsn > this.lastHandled) this.lastHandled = endLsn;
    this.lastCommitTs = commitTs;
    this.wake();
  }

  /** A transaction was handled without a target transaction of its own. */
  handled(endLsn: Lsn): void {
    if (endLsn > this.lastHandled) this.lastHandled = endLsn;
  }

  /** Resolves once fewer than `below` transactions are unconfirmed (at once if so already). */
  whenBelow(below: number): Promise<void> {
    if (this.size < below) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ below, resolve }));
  }

  /** Wakes every waiter (after a failure nothing more will be confirmed). */
  release(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const x of w) x.resolve();
  }

  private wake(): void {
    if (this.waiters.length === 0) return;
    const keep: typeof this.waiters = [];
    for (const w of this.waiters) {
      if (this.size < w.below) w.resolve();
      else keep.push(w);
    }
    this.waiters = keep;
  }
}
