import { classifyDriverError } from '@pgfleet/connection';
import { formatLsn, type Lsn } from '@pgfleet/wal';
import type { Logger } from 'pino';
import { SQLSTATE_GUARD } from '../metadata.js';
import type { ApplyConnection } from './apply-connection.js';
import { type ReadyTx, type SentRun, type SessionParams, TxBatch, txShape } from './batch.js';
import type { ApplierFailure } from './failure.js';
import type { ConflictSqlContext, GroupShape } from './group-sql.js';
import type { CommitLedger } from './ledger.js';

/** A call is sent at the latest when it holds this many transactions or rows. */
const BATCH_MAX_TRANSACTIONS = 1000;
const BATCH_MAX_ROWS = 4000;
const IN_FAILED_SQL_TRANSACTION = '25P02';
const UNIQUE_VIOLATION = '23505';

export interface BatcherContext {
  conn: ApplyConnection;
  ledger: CommitLedger;
  session(): SessionParams;
  conflictContext(g: GroupShape): ConflictSqlContext;
  /** Origin progress as the apply session sees it (read after a call failed). */
  readProgress(): Promise<Lsn>;
  /**
   * Stops the applier from handling messages (and so from sending anything) until the
   * returned function is called. Messages received meanwhile wait in order.
   */
  hold(): () => void;
  /** A transaction applied statement by statement or change by change is open or unconfirmed. */
  otherPathsInFlight(): boolean;
  fail(f: ApplierFailure): void;
  logger: Logger;
}

/**
 * Collects committed transactions of one shape into a run and sends the run as one CALL
 * of the shape's procedure (shape-sql.ts), at the latest when the messages already
 * received are handled: a run never waits for more.
 *
 * Single-row inserts are sent as plain INSERTs: ON CONFLICT costs a speculative insertion
 * per row, and a key that already exists on the target is rare outside a conflict. When one
 * does exist, the call fails with unique_violation at that transaction; the ones before it
 * committed, and every call sent after it fails at its guard (origin progress is not what it
 * expects) without writing anything. The batcher then applies that table's single-row inserts
 * with ON CONFLICT for the rest of the session (the conflict is resolved in SQL like any
 * other) and sends again, in order, every transaction from the failed one on: no session
 * restart, nothing applied twice. So a sent run keeps its parameters until its call
 * returns (SentRun), but not its decoded transactions: held for as long as a call runs,
 * they outlived the collector's young generation, and copying them out of it was most of
 * the replicator's garbage collection.
 */
export class Batcher {
  private batch: TxBatch | null = null;
  private scheduled = false;
  /** Runs whose call has not returned, in the order sent. */
  private readonly sentRuns: SentRun[] = [];
  /** Tables whose single-row inserts take ON CONFLICT (tableKey). */
  private readonly keysExist = new Set<string>();
  /** End LSN of the last transaction entered in the ledger (a run sent again is not entered twice). */
  private recordedThrough: Lsn | null = null;
  /** A failed call is being recovered from: nothing is sent, later failures are its consequence. */
  private recovering = false;
  /** Transactions queued while recovering, sent after the ones being sent again. */
  private readonly deferred: Array<{ r: ReadyTx; expected: Lsn }> = [];

  constructor(private readonly c: BatcherContext) {}

  /** Transactions waiting to be sent. */
  get waiting(): number {
    return (this.batch?.txs.length ?? 0) + this.deferred.length;
  }

  /**
   * Queues a transaction after those queued or sent before it; `expected` is the origin
   * progress before it. False when its shape gets no procedure (too many shapes): the
   * caller applies it otherwise, after flush().
   */
  add(r: ReadyTx, expected: Lsn): boolean {
    if (this.recovering) {
      this.deferred.push({ r, expected });
      return true;
    }
    const { key, shape } = txShape(r, this.keysExist);
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
    if (!b || this.recovering) return;
    this.batch = null;
    const proc = this.c.conn.procedure(b.shapeKey, b.shape, this.c.conflictContext) as NonNullable<
      ReturnType<ApplyConnection['procedure']>
    >;
    for (const r of b.txs) {
      if (this.recordedThrough !== null && r.endLsn <= this.recordedThrough) continue;
      this.c.ledger.sent(r.endLsn, r.tx.commitTs, r.tx.rows);
      this.recordedThrough = r.endLsn;
    }
    this.send(b.sent(this.c.session()), proc.call, proc.name);
  }

  private send(run: SentRun, call: string, name: string): void {
    this.sentRuns.push(run);
    this.c.conn.send(call, run.params as unknown[], name).then(
      () => {
        this.returned(run);
        this.c.ledger.confirmThrough(run.lastEnd);
      },
      (err: unknown) => this.failed(run, err as Error),
    );
  }

  private returned(run: SentRun): void {
    const i = this.sentRuns.indexOf(run);
    if (i >= 0) this.sentRuns.splice(0, i + 1);
  }

  /**
   * A call failed. The transactions before the failing one did commit (each is its own):
   * origin progress, read right after, says which; the first one past it is the one that
   * failed. A guard failure is the consequence of an earlier failure, already reported.
   */
  private async failed(run: SentRun, err: Error): Promise<void> {
    if (this.recovering) return; // sent after the call being recovered from: it sends this again
    const c = classifyDriverError(err);
    if (c.kind === 'connection') return this.c.fail({ kind: 'retry', error: err });
    if (c.kind === 'server' && (c.sqlState === SQLSTATE_GUARD || c.sqlState === IN_FAILED_SQL_TRANSACTION)) {
      // Normally the consequence of an earlier failure, reported by its own handler (which
      // reads progress first). If nothing was, origin progress is not what the apply
      // expected: start over from it.
      setTimeout(() => this.c.fail({ kind: 'retry', error: err }), 200);
      return;
    }
    const uniqueViolation = c.kind === 'server' && c.sqlState === UNIQUE_VIOLATION;
    // Read progress with nothing else sent behind it: every call sent before has run then.
    const release = uniqueViolation ? this.c.hold() : null;
    if (release) this.recovering = true;
    let progress: Lsn;
    try {
      progress = await this.c.readProgress();
    } catch (e) {
      this.c.fail({ kind: 'retry', error: e as Error });
      release?.();
      return;
    }
    this.c.ledger.confirmThrough(progress);
    const failing = run.firstPast(progress);
    if (release && failing >= 0 && this.sendAgain(run, failing, progress)) {
      release();
      return;
    }
    this.recovering = false;
    if (failing >= 0 && c.kind === 'server')
      this.c.fail({ kind: 'replay', commitLsn: run.commitLsn(failing), error: err });
    else this.c.fail({ kind: 'retry', error: err });
    release?.(); // after the failure: nothing more is handled
  }

  /**
   * After a unique_violation in `run` at transaction `failing`: when that run applies
   * single-row inserts plainly and nothing but batched runs is in flight, switches their
   * tables to ON CONFLICT and sends again everything from `failing` on, the runs already
   * sent with the parameters they had. False: nothing was changed, the failure stands.
   */
  private sendAgain(run: SentRun, failing: number, progress: Lsn): boolean {
    const tables = new Set(run.plainInsertTables().filter((t) => !this.keysExist.has(t)));
    if (tables.size === 0 || this.c.otherPathsInFlight()) return false;
    const from = this.sentRuns.indexOf(run);
    const again: Array<{ run: SentRun; from: number }> = [];
    let count = 0;
    for (const r of from < 0 ? [] : this.sentRuns.slice(from)) {
      const i = r === run ? failing : r.firstPast(progress);
      if (i < 0) continue;
      again.push({ run: r, from: i });
      count += r.size - (i - r.from);
    }
    if (count !== this.c.ledger.size) return false; // something else was sent: not ours to redo
    for (const t of tables) this.keysExist.add(t);
    this.c.logger.info(
      { event: 'insert_key_exists', tables: [...tables], resent: count },
      `a single-row insert met an existing key in ${[...tables].join(', ')}: this session applies its inserts with ON CONFLICT from now on, and sends the ${count} transaction(s) from ${formatLsn(run.commitLsn(failing))} on again`,
    );
    this.sentRuns.length = 0;
    const queued = this.batch?.txs ?? [];
    this.batch = null;
    const deferred = this.deferred.splice(0);
    this.recovering = false;
    let expected = progress;
    for (const a of again) {
      const r = a.run.again(a.from, this.keysExist);
      const proc = this.c.conn.procedure(r.shapeKey, r.shape, this.c.conflictContext);
      if (!proc) return this.giveUp(r.commitLsn(r.from));
      this.send(r, proc.call, proc.name);
      expected = r.lastEnd;
    }
    for (const r of queued) {
      if (!this.add(r, expected)) return this.giveUp(r.tx.finalLsn);
      expected = r.endLsn;
    }
    for (const d of deferred) if (!this.add(d.r, d.expected)) return this.giveUp(d.r.tx.finalLsn);
    this.flush();
    return true;
  }

  /** A transaction sent again found no procedure (too many shapes this session): start over. */
  private giveUp(commitLsn: Lsn): true {
    this.c.fail({
      kind: 'replay',
      commitLsn,
      error: new Error('too many transaction shapes'),
    });
    return true;
  }
}
