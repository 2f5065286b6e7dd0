import { classifyDriverError } from '@pgfleet/connection';
import type { Lsn } from '@pgfleet/wal';
import { SQLSTATE_GUARD } from '../metadata.js';
import type { ApplyConnection } from './apply-connection.js';
import { type ReadyTx, type SessionParams, TxBatch, txShape } from './batch.js';
import type { ApplierFailure } from './failure.js';
import type { ConflictSqlContext, GroupShape } from './group-sql.js';
import type { CommitLedger } from './ledger.js';

/** A call is sent at the latest when it holds this many transactions or rows. */
const BATCH_MAX_TRANSACTIONS = 1000;
const BATCH_MAX_ROWS = 4000;
const IN_FAILED_SQL_TRANSACTION = '25P02';

export interface BatcherContext {
  conn: ApplyConnection;
  ledger: CommitLedger;
  session(): SessionParams;
  conflictContext(g: GroupShape): ConflictSqlContext;
  /** Origin progress as the apply session sees it (read after a call failed). */
  readProgress(): Promise<Lsn>;
  fail(f: ApplierFailure): void;
}

/**
 * Collects committed transactions of one shape into a run and sends the run as one CALL
 * of the shape's procedure (shape-sql.ts), at the latest when the messages already
 * received are handled: a run never waits for more.
 */
export class Batcher {
  private batch: TxBatch | null = null;
  private scheduled = false;

  constructor(private readonly c: BatcherContext) {}

  /** Transactions waiting to be sent. */
  get waiting(): number {
    return this.batch?.txs.length ?? 0;
  }

  /**
   * Queues a transaction after those queued or sent before it; `expected` is the origin
   * progress before it. False when its shape gets no procedure (too many shapes): the
   * caller applies it otherwise, after flush().
   */
  add(r: ReadyTx, expected: Lsn): boolean {
    const { key, shape } = txShape(r);
    if (this.batch && this.batch.shapeKey !== key) this.flush();
    if (!this.batch) {
      if (!this.c.conn.procedure(key, shape, this.c.conflictContext)) return false;
      this.batch = new TxBatch(key, shape, expected);
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => {
          this.scheduled = false;
          this.flush();
        });
      }
    }
    this.batch.add(r);
    if (this.batch.txs.length >= BATCH_MAX_TRANSACTIONS || this.batch.rows >= BATCH_MAX_ROWS) this.flush();
    return true;
  }

  /** Sends the queued run, if any. */
  flush(): void {
    const b = this.batch;
    if (!b) return;
    this.batch = null;
    const proc = this.c.conn.procedure(b.shapeKey, b.shape, this.c.conflictContext) as NonNullable<
      ReturnType<ApplyConnection['procedure']>
    >;
    for (const r of b.txs)
      this.c.ledger.sent({
        finalLsn: r.tx.finalLsn,
        endLsn: r.endLsn,
        commitTs: r.tx.commitTs,
        rows: r.tx.rows,
      });
    const last = b.txs[b.txs.length - 1] as ReadyTx;
    this.c.conn.send(proc.call, b.params(this.c.session()), proc.name).then(
      () => this.c.ledger.confirmThrough(last.endLsn),
      (err: unknown) => this.failed(b, err as Error),
    );
  }

  /**
   * A call failed. The transactions before the failing one did commit (each is its own):
   * origin progress, read right after, says which; the first one past it is the one that
   * failed. A guard failure is the consequence of an earlier failure, already reported.
   */
  private async failed(b: TxBatch, err: Error): Promise<void> {
    const c = classifyDriverError(err);
    if (c.kind === 'connection') return this.c.fail({ kind: 'retry', error: err });
    if (c.kind === 'server' && (c.sqlState === SQLSTATE_GUARD || c.sqlState === IN_FAILED_SQL_TRANSACTION)) {
      // Normally the consequence of an earlier failure, reported by its own handler (which
      // reads progress first). If nothing was, origin progress is not what the apply
      // expected: start over from it.
      setTimeout(() => this.c.fail({ kind: 'retry', error: err }), 200);
      return;
    }
    let progress: Lsn;
    try {
      progress = await this.c.readProgress();
    } catch (e) {
      return this.c.fail({ kind: 'retry', error: e as Error });
    }
    this.c.ledger.confirmThrough(progress);
    const failing = b.txs.find((r) => r.endLsn > progress);
    if (failing && c.kind === 'server')
      this.c.fail({ kind: 'replay', commitLsn: failing.tx.finalLsn, error: err });
    else this.c.fail({ kind: 'retry', error: err });
  }
}
