import type { Lsn } from '@pgfleet/wal';

/** A source transaction sent to the target and not yet known to be committed there. */
export interface LedgerEntry {
  finalLsn: Lsn;
  endLsn: Lsn;
  commitTs: bigint;
  rows: number;
}

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
  private readonly entries: LedgerEntry[] = [];
  private head = 0;
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
    return this.entries.length - this.head;
  }

  /** The oldest unconfirmed transaction, if any. */
  oldest(): LedgerEntry | undefined {
    return this.entries[this.head];
  }

  sent(e: LedgerEntry): void {
    this.entries.push(e);
  }

  /** Every sent transaction ending at or before `endLsn` committed (a call that returned, origin progress). */
  confirmThrough(endLsn: Lsn): void {
    let n = 0;
    let rows = 0;
    let last: LedgerEntry | undefined;
    while (this.head < this.entries.length) {
      const e = this.entries[this.head] as LedgerEntry;
      if (e.endLsn > endLsn) break;
      this.head++;
      n++;
      rows += e.rows;
      last = e;
    }
    if (!last) return;
    if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries.splice(0, this.head);
      this.head = 0;
    }
    this.lastApplied = last.endLsn;
    if (last.endLsn > this.lastHandled) this.lastHandled = last.endLsn;
    this.lastCommitTs = last.commitTs;
    this.onApplied({ transactions: n, rows, endLsn: last.endLsn, commitTs: last.commitTs });
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
