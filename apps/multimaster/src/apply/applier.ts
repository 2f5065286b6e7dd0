import { SqlState } from '@pgfleet/connection';
import { formatLsn, type Lsn, parseLsn } from '@pgfleet/wal';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { ConflictPolicy, DeadLetterPolicy } from '../config.js';
import type { ConflictKind } from '../conflict.js';
import { decideDeadLetter } from '../dead-letter.js';
import {
  type DeleteMessage,
  type InsertMessage,
  type PgoutputMessage,
  type RelationMessage,
  UNCHANGED_TOAST,
  type UpdateMessage,
} from '../decode/messages.js';
import type { DecodeFailure } from '../decode/stream.js';
import { SQLSTATE_GUARD } from '../metadata.js';
import type { Edge } from '../naming.js';
import { shouldSkipTransaction } from '../origin-filter.js';
import { formatPgTimestamp } from '../pg-time.js';
import { applyChangeCarefully, type CarefulApplyContext } from './careful-change.js';
import {
  DeadLetterRecorder,
  type DeadLetterRow,
  RESOLVE_PAUSED_SQL,
  recordedChange,
  recordedTruncate,
} from './dead-letter-recorder.js';
import { ApplyPausedError, ConflictError, SchemaMismatchError } from './errors.js';
import {
  type ApplyTable,
  BATCH_COMMITTED_NOTICE,
  callBatchStatement,
  commitStatement,
  deleteStatement,
  insertBatchProcedure,
  insertStatement,
  lastCommand,
  truncateStatement,
  updateStatement,
} from './statements.js';
import { applyTableFor, type TargetTable } from './target-table.js';
import { changeImage, keyChanged, textOf } from './tuples.js';

export type { DeadLetterRow } from './dead-letter-recorder.js';

export type SkipReason = 'echo' | 'empty' | 'dead_letter' | 'operator';

export interface ApplierHooks {
  onTransactionApplied(tx: { endLsn: Lsn; commitTs: bigint; rows: number }): void;
  /**
   * A transaction was handled without applying it: `echo` (it carries an origin, so it was
   * applied by a replicator on the source), `empty` (no change for us), `dead_letter`
   * (refused and recorded), `operator` (skipped by `pgfleet-mm skip`).
   */
  onTransactionSkipped(tx: { endLsn: Lsn; reason: SkipReason }): void;
  onConflict(kind: ConflictKind, resolution: string): void;
}

export interface ApplierOptions {
  edge: Edge;
  /** Apply session: origin set up, session_replication_role = replica, pipeline mode. */
  db: pg.Client;
  sourceOriginId: number;
  sourceRank: number;
  /** Rank of the node that made a row's last change, from its replication origin id (0 = the target itself). */
  rankOfOriginId(id: number): number;
  originNameOf(id: number): string;
  policyFor(schema: string, table: string): ConflictPolicy;
  deadLetter: DeadLetterPolicy;
  batchRows: number;
  maxInFlightTransactions: number;
  /** Origin progress when the stream started: what the first pipelined transaction's guard expects. */
  startProgress: Lsn;
  /** Replay this transaction (by commit LSN) on the careful path, change by change. */
  carefulCommitLsn: Lsn | null;
  /**
   * The edge was paused on carefulCommitLsn: once that transaction commits (its cause was
   * fixed) or is skipped by the operator, its `pause` dead letter is marked resolved.
   */
  pausedOnCareful: boolean;
  /**
   * Record this transaction (by commit LSN) whole as a dead letter and skip it: a change of
   * it was refused under skip_transaction, and every change must be on record.
   */
  deadLetterTx: { commitLsn: Lsn; row: DeadLetterRow } | null;
  /** Origin through which `pgfleet-mm dead-letters --replay` writes this source's changes (its rows count as the source's own). */
  replayOriginId: number | null;
  /** Columns and row key of a target table (null when it does not exist). */
  loadTargetTable(schema: string, table: string): Promise<TargetTable | null>;
  skipRequested(commitLsn: Lsn): Promise<boolean>;
  /** Records a dead letter outside the apply transaction (pause_edge keeps retrying, so it de-duplicates). */
  recordPausedDeadLetter(row: DeadLetterRow): Promise<void>;
  /** Records a conflict resolved as `error` outside the apply transaction (which is rolled back). */
  recordErrorConflict(values: unknown[]): Promise<void>;
  hooks: ApplierHooks;
  logger: Logger;
}

/** Why the applier stopped: the edge restarts the stream from origin progress accordingly. */
export type ApplierFailure =
  | { kind: 'replay'; commitLsn: Lsn; error: Error }
  /** Skip this transaction, recording every change of it (the stream restarts to read it whole). */
  | { kind: 'dead_letter'; commitLsn: Lsn; row: DeadLetterRow; error: Error }
  | { kind: 'pause'; error: Error }
  | { kind: 'retry'; error: Error };

interface Relation {
  msg: RelationMessage;
  table: ApplyTable;
}

interface OpenTx {
  finalLsn: Lsn;
  commitTs: bigint;
  xid: number;
  origin: string | null;
  /**
   * skip: an echo; dead / operator-skip: recorded change by change as a dead letter
   * (skip_transaction, `pgfleet-mm skip`) and skipped.
   */
  mode: 'pending' | 'fast' | 'careful' | 'skip' | 'dead' | 'operator-skip';
  /** Fast path: BEGIN and the guard were sent (deferred until the first statement, see openTx). */
  opened: boolean;
  rows: number;
  recorder: DeadLetterRecorder | null;
}

interface Group {
  rel: Relation;
  kind: 'insert' | 'update' | 'delete';
  /** insert: all columns; update: key (old) + set indexes; delete: key. */
  setIndexes: number[];
  shapeKey: string;
  columns: Array<Array<string | null>>;
  keys: Set<string>;
  count: number;
}

interface InFlight {
  finalLsn: Lsn;
  endLsn: Lsn;
  commitTs: bigint;
  rows: number;
  /** Resolves true once the transaction committed, false if it did not (never rejects). */
  commit: Promise<boolean>;
  done: boolean;
}

/**
 * Insert-only fast-path transactions of one table shape, waiting to be sent as one CALL
 * of an insertBatchProcedure (each still its own target transaction).
 */
interface Batch {
  shapeKey: string;
  rel: Relation;
  setIndexes: number[];
  /** Origin progress the first transaction of the batch expects (the call's guard). */
  expected: Lsn;
  ends: string[];
  tss: string[];
  lo: number[];
  hi: number[];
  columns: Array<Array<string | null>>;
  rows: number;
  entries: Array<{ entry: InFlight; resolve: (committed: boolean) => void }>;
}

/** A batch is sent at the latest when it holds this many transactions or rows. */
const BATCH_MAX_TRANSACTIONS = 1000;
const BATCH_MAX_ROWS = 2000;

const IN_FAILED_SQL_TRANSACTION = '25P02';
const TRANSIENT_SQLSTATES = new Set<string>([
  SqlState.DEADLOCK_DETECTED,
  SqlState.SERIALIZATION_FAILURE,
  '55P03' /* lock_not_available */,
]);

function sqlStateOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown })?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

function isConnectionError(err: unknown): boolean {
  const code = sqlStateOf(err);
  if (code) return code.startsWith('08') || code.startsWith('57P');
  return true; // not a server error: socket closed, client ended
}

/**
 * Applies one edge's decoded transactions to the target.
 *
 * Fast path: each source transaction becomes BEGIN, a guard, set-based statements
 * (rows of one table and kind grouped, one text[] parameter per column), origin xact
 * setup and COMMIT, all pipelined without waiting, many transactions deep. Statements
 * only succeed when no conflict is possible (the row is new, or was last written by the
 * same source or this transaction); anything else raises and the transaction is replayed
 * on the careful path, change by change, where conflicts are detected, resolved with
 * resolveConflict and recorded. The guard makes every later pipelined transaction fail
 * too, so origin progress never skips a transaction.
 */
export class Applier {
  private readonly relations = new Map<number, Relation>();
  private tx: OpenTx | null = null;
  private group: Group | null = null;
  private batch: Batch | null = null;
  private batchFlushScheduled = false;
  private readonly batchProcedures = new Map<string, string>();
  private corked = false;
  /** Transactions of batches sent and not yet known committed, by end LSN text. */
  private readonly batchWaiting = new Map<string, { batch: Batch; index: number }>();
  private readonly inflight: InFlight[] = [];
  /** Pipelined statements not yet answered. */
  private readonly pending = new Set<Promise<unknown>>();
  private statementCounter = 0;
  private expectedProgress: Lsn;
  private readonly prepared = new Map<string, string>();
  private failure: ApplierFailure | null = null;
  private failTx: Lsn | null = null;
  private resolveFailed!: (f: ApplierFailure) => void;
  /** Settles when the applier gives up; the edge then restarts the stream. */
  readonly failed: Promise<ApplierFailure>;
  lastAppliedEndLsn: Lsn;
  lastHandledEndLsn: Lsn;
  lastCommitTs: bigint | null = null;

  constructor(private readonly o: ApplierOptions) {
    this.expectedProgress = o.startProgress;
    this.lastAppliedEndLsn = o.startProgress;
    this.lastHandledEndLsn = o.startProgress;
    this.failed = new Promise((resolve) => {
      this.resolveFailed = resolve;
    });
    o.db.on('notice', (n: { message?: string }) => {
      const m = n.message;
      if (!m?.startsWith(BATCH_COMMITTED_NOTICE)) return;
      let key: string;
      try {
        key = formatLsn(parseLsn(m.slice(BATCH_COMMITTED_NOTICE.length)));
      } catch {
        return;
      }
      const waiting = this.batchWaiting.get(key);
      if (!waiting) return;
      // This transaction committed, and so did every earlier one of its call.
      for (let i = 0; i <= waiting.index; i++) waiting.batch.entries[i]?.resolve(true);
    });
  }

  /**
   * A transaction is open or pipelined and not yet confirmed committed, or the applier
   * failed (then what the target holds is only known from origin progress, so nothing past
   * the last confirmed commit may be reported to the source, keepalives included).
   */
  inFlight(): boolean {
    return this.tx !== null || this.inflight.length > 0 || this.failure !== null;
  }

  hasFailed(): boolean {
    return this.failure !== null;
  }

  private fail(f: ApplierFailure): void {
    if (this.failure) return;
    this.failure = f;
    this.resolveFailed(f);
  }

  /** Waits until every pipelined statement settled (after a failure or at shutdown). */
  async drain(): Promise<void> {
    this.flushBatch();
    await Promise.allSettled([...this.pending, ...this.inflight.map((t) => t.commit)]);
  }

  async handle(msg: PgoutputMessage | DecodeFailure): Promise<void> {
    if (this.failure) return;
    try {
      await this.dispatch(msg);
    } catch (err) {
      this.onError(err as Error, this.tx?.finalLsn ?? null);
    }
  }

  private onError(err: Error, finalLsn: Lsn | null): void {
    if (err instanceof SchemaMismatchError || err instanceof ApplyPausedError)
      this.fail({ kind: 'pause', error: err });
    else if (isConnectionError(err) && !(err instanceof ConflictError))
      this.fail({ kind: 'retry', error: err });
    else if (finalLsn !== null) this.fail({ kind: 'replay', commitLsn: finalLsn, error: err });
    else this.fail({ kind: 'retry', error: err });
  }

  private async dispatch(msg: PgoutputMessage | DecodeFailure): Promise<void> {
    switch (msg.tag) {
      case 'decode_error':
        throw msg.error;
      case 'begin':
        this.tx = {
          finalLsn: msg.finalLsn,
          commitTs: msg.commitTs,
          xid: msg.xid,
          origin: null,
          mode: 'pending',
          opened: false,
          rows: 0,
          recorder: null,
        };
        return;
      case 'origin':
        if (this.tx) this.tx.origin = msg.name;
        return;
      case 'relation':
        return this.onRelation(msg);
      case 'type':
      case 'message':
        return;
      case 'insert':
      case 'update':
      case 'delete':
      case 'truncate': {
        const tx = this.tx;
        if (!tx) throw new Error(`${msg.tag} outside a transaction`);
        if (tx.mode === 'pending') await this.startTx(tx);
        if (this.failure) return;
        if (tx.mode === 'skip') return;
        tx.rows++;
        if (tx.mode === 'dead' || tx.mode === 'operator-skip') return this.record(tx, msg);
        if (tx.mode === 'careful') return this.careful(tx, msg);
        return this.fast(tx, msg);
      }
      case 'commit':
        return this.onCommit(msg.commitLsn, msg.endLsn);
    }
  }

  private async startTx(tx: OpenTx): Promise<void> {
    if (shouldSkipTransaction(tx.origin)) {
      tx.mode = 'skip';
      return;
    }
    const dead = this.o.deadLetterTx;
    if (dead !== null && tx.finalLsn === dead.commitLsn) {
      await this.waitInflight(0);
      if (this.failure) return;
      await this.beginRecording(tx, 'dead', dead.row);
      return;
    }
    if (this.o.carefulCommitLsn !== null && tx.finalLsn === this.o.carefulCommitLsn) {
      await this.waitInflight(0);
      if (this.failure) return;
      if (await this.o.skipRequested(tx.finalLsn)) {
        await this.beginRecording(tx, 'operator-skip', {
          commitLsn: tx.finalLsn,
          endLsn: tx.finalLsn,
          xid: tx.xid,
          commitTs: tx.commitTs,
          table: null,
          changeKind: null,
          change: null,
          sqlState: null,
          error: 'skipped by operator request',
          action: 'skipped_by_operator',
        });
        return;
      }
      tx.mode = 'careful';
      await this.o.db.query('BEGIN');
      if (this.o.deadLetter === 'discard') await this.o.db.query('SAVEPOINT pgfleet_change');
      return;
    }
    tx.mode = 'fast';
  }

  /**
   * Opens the target transaction that records `tx` as a dead letter, change by change, and
   * commits with its origin progress instead of its data (onCommit).
   */
  private async beginRecording(
    tx: OpenTx,
    mode: 'dead' | 'operator-skip',
    row: DeadLetterRow,
  ): Promise<void> {
    tx.mode = mode;
    tx.recorder = new DeadLetterRecorder(this.o.db, this.o.edge, this.o.deadLetter);
    await this.o.db.query('BEGIN');
    await tx.recorder.begin(row);
  }

  private async record(
    tx: OpenTx,
    msg:
      | InsertMessage
      | UpdateMessage
      | DeleteMessage
      | { tag: 'truncate'; relationIds: number[]; cascade: boolean; restartIdentity: boolean },
  ): Promise<void> {
    const recorder = tx.recorder as DeadLetterRecorder;
    if (msg.tag === 'truncate')
      await recorder.add(
        recordedTruncate(
          msg.relationIds.map((id) => this.rel(id).table),
          msg,
        ),
      );
    else await recorder.add(recordedChange(this.rel(msg.relationId).table, msg));
  }

  /**
   * Sends BEGIN and the guard of a fast-path transaction, once, before its first statement.
   * Deferred so that an insert-only transaction can join a batch instead (onCommit); any
   * batch still unsent goes first, so the target sees transactions in source order.
   */
  private openTx(tx: OpenTx): void {
    if (tx.opened) return;
    this.flushBatch();
    tx.opened = true;
    this.send('BEGIN', [], tx.finalLsn);
    this.send(
      'SELECT pgfleet.apply_guard($1::pg_lsn)',
      [formatLsn(this.expectedProgress)],
      tx.finalLsn,
      'pgfleet_guard',
    );
  }

  private async onRelation(msg: RelationMessage): Promise<void> {
    // A relation message may arrive inside a transaction: flush what is grouped first.
    this.flushGroup();
    const table = applyTableFor(this.o.edge, msg, await this.o.loadTargetTable(msg.schema, msg.name));
    // A batch holds the old relation's shape: send it before the relation changes.
    this.flushBatch();
    this.relations.set(msg.relationId, { msg, table });
    for (const k of [...this.prepared.keys()])
      if (k.startsWith(`${msg.relationId}:`)) this.prepared.delete(k);
    for (const k of [...this.batchProcedures.keys()])
      if (k.startsWith(`${msg.relationId}:`)) this.batchProcedures.delete(k);
  }

  private rel(id: number): Relation {
    const r = this.relations.get(id);
    if (!r) throw new Error(`change for unknown relation ${id} (no relation message)`);
    return r;
  }

  // ---------------------------------------------------------------- fast path

  /**
   * Holds the apply socket's writes until the current turn of the event loop ends, so the
   * statements queued meanwhile leave in one write instead of one syscall each.
   */
  private cork(): void {
    if (this.corked) return;
    const stream = (this.o.db as unknown as { connection?: { stream?: { cork?(): void; uncork?(): void } } })
      .connection?.stream;
    if (!stream?.cork || !stream.uncork) return;
    this.corked = true;
    stream.cork();
    setImmediate(() => {
      this.corked = false;
      stream.uncork?.();
    });
  }

  private send(text: string, values: unknown[], finalLsn: Lsn, name?: string): Promise<pg.QueryResult> {
    this.cork();
    const p = this.o.db.query(name ? { name, text, values } : { text, values });
    p.catch((err: unknown) => {
      if (sqlStateOf(err) === SQLSTATE_GUARD) return; // a consequence of an earlier failure
      if (sqlStateOf(err) === IN_FAILED_SQL_TRANSACTION) return;
      if (this.failTx === null) this.failTx = finalLsn;
      this.onError(err as Error, finalLsn);
    });
    this.pending.add(p);
    const forget = () => this.pending.delete(p);
    p.then(forget, forget);
    return p;
  }

  private statementName(key: string): string {
    let name = this.prepared.get(key);
    if (!name) {
      name = `pgf_${this.statementCounter++}`;
      this.prepared.set(key, name);
    }
    return name;
  }

  /** Bounds memory on huge transactions: never more than this many statements unanswered. */
  private async backpressure(): Promise<void> {
    while (this.pending.size > 64 && !this.failure) {
      await Promise.race([...this.pending].slice(0, 8)).catch(() => {});
    }
  }

  /** Continues the open transaction on the careful path once all its pipelined statements ran. */
  private async toCareful(tx: OpenTx): Promise<void> {
    this.flushGroup();
    this.openTx(tx);
    await Promise.allSettled([...this.pending]);
    if (this.failure) return;
    tx.mode = 'careful';
    if (this.o.deadLetter === 'discard') await this.o.db.query('SAVEPOINT pgfleet_change');
  }

  private async fast(
    tx: OpenTx,
    msg:
      | InsertMessage
      | UpdateMessage
      | DeleteMessage
      | { tag: 'truncate'; relationIds: number[]; cascade: boolean; restartIdentity: boolean },
  ): Promise<void> {
    if (msg.tag === 'truncate') {
      this.flushGroup();
      this.openTx(tx);
      const tables = msg.relationIds.map((id) => this.rel(id).table);
      this.send(truncateStatement(tables, msg), [], tx.finalLsn);
      return;
    }
    const rel = this.rel(msg.relationId);
    if (rel.table.identityFull) {
      // Rows without a key are matched on every column: the careful path handles them.
      await this.toCareful(tx);
      if (this.failure) return;
      return this.careful(tx, msg);
    }
    const t = rel.table;
    let kind: Group['kind'];
    let setIndexes: number[];
    let keyValues: Array<string | null>;
    let values: Array<string | null>;
    if (msg.tag === 'insert') {
      kind = 'insert';
      setIndexes = t.columns.map((_, i) => i);
      values = msg.newTuple.map((v) => (v === UNCHANGED_TOAST ? null : v));
      keyValues = t.keyIndexes.map((i) => values[i] ?? null);
    } else if (msg.tag === 'update') {
      kind = 'update';
      const newT = msg.newTuple;
      const oldKeySource = msg.key ?? msg.old ?? newT;
      keyValues = t.keyIndexes.map((i) => textOf(oldKeySource[i]));
      const changed = keyChanged(t, msg);
      setIndexes = newT.flatMap((v, i) =>
        v === UNCHANGED_TOAST || (!changed && t.columns[i]?.isKey) ? [] : [i],
      );
      if (setIndexes.length === 0) setIndexes = [t.keyIndexes[0] as number];
      values = [...keyValues, ...setIndexes.map((i) => textOf(newT[i]))];
    } else {
      kind = 'delete';
      setIndexes = [];
      const src = msg.key ?? msg.old;
      if (!src) throw new Error('delete without key');
      keyValues = t.keyIndexes.map((i) => textOf(src[i]));
      values = keyValues;
    }
    const shapeKey = `${msg.relationId}:${kind}:${setIndexes.join(',')}`;
    // Two inserts of one key in one group fail as a unique violation anyway (careful path
    // then), like two statements would: no need to track insert keys.
    const keyText = kind === 'insert' ? '' : JSON.stringify(keyValues);
    let g = this.group;
    if (
      g &&
      (g.shapeKey !== shapeKey || (kind !== 'insert' && g.keys.has(keyText)) || g.count >= this.o.batchRows)
    ) {
      this.flushGroup();
      await this.backpressure();
      g = null;
    }
    if (!g) {
      const width =
        kind === 'insert'
          ? setIndexes.length
          : kind === 'update'
            ? t.keyIndexes.length + setIndexes.length
            : t.keyIndexes.length;
      g = {
        rel,
        kind,
        setIndexes,
        shapeKey,
        columns: Array.from({ length: width }, () => []),
        keys: new Set(),
        count: 0,
      };
      this.group = g;
    }
    for (let j = 0; j < g.columns.length; j++) (g.columns[j] as Array<string | null>).push(values[j] ?? null);
    if (kind !== 'insert') g.keys.add(keyText);
    g.count++;
  }

  private flushGroup(): void {
    const g = this.group;
    if (!g || !this.tx) return;
    this.group = null;
    this.openTx(this.tx);
    const t = g.rel.table;
    const stmt =
      g.kind === 'insert'
        ? insertStatement(t, g.setIndexes)
        : g.kind === 'update'
          ? updateStatement(t, g.setIndexes)
          : deleteStatement(t);
    const values: unknown[] = [...g.columns];
    if (g.kind !== 'insert') values.push(this.o.sourceOriginId, g.count);
    this.send(stmt.text, values, this.tx.finalLsn, this.statementName(g.shapeKey));
  }

  private async waitInflight(limit: number): Promise<void> {
    while (this.inflight.length > limit && !this.failure) {
      // Waiting on a transaction still in the unsent batch: send it (otherwise let it grow).
      if (this.batch && this.batch.entries[0]?.entry === this.inflight[0]) this.flushBatch();
      await this.confirmOldest();
    }
  }

  /**
   * Waits for the oldest pipelined transaction's COMMIT and records it as applied. The
   * status timer (settle) and the apply loop (waitInflight) may both wait on the same
   * entry; only the first to resume may take it off the queue. Taking it twice would drop
   * the next, still uncommitted transaction from the queue, and the edge would then
   * report that one as flushed to the source: lost if it then failed or the process died.
   */
  private async confirmOldest(): Promise<void> {
    const first = this.inflight[0] as InFlight;
    const committed = await first.commit;
    if (this.failure || this.inflight[0] !== first) return;
    this.inflight.shift();
    if (!committed) {
      this.fail({ kind: 'replay', commitLsn: first.finalLsn, error: new Error('transaction rolled back') });
      return;
    }
    this.lastAppliedEndLsn = first.endLsn;
    if (first.endLsn > this.lastHandledEndLsn) this.lastHandledEndLsn = first.endLsn;
    this.lastCommitTs = first.commitTs;
    this.o.hooks.onTransactionApplied({ endLsn: first.endLsn, commitTs: first.commitTs, rows: first.rows });
  }

  /** Confirms whatever already committed, without waiting for anything still running (status timer). */
  async settle(): Promise<void> {
    while (!this.failure && this.inflight.length > 0 && (this.inflight[0] as InFlight).done) {
      await this.confirmOldest();
    }
  }

  private async onCommit(commitLsn: Lsn, endLsn: Lsn): Promise<void> {
    const tx = this.tx;
    if (!tx) return;
    void commitLsn;
    try {
      switch (tx.mode) {
        case 'pending':
        case 'skip':
          this.tx = null;
          this.markHandled(endLsn);
          this.o.hooks.onTransactionSkipped({ endLsn, reason: tx.mode === 'skip' ? 'echo' : 'empty' });
          return;
        case 'fast': {
          let entry: InFlight;
          const g = this.group;
          if (!tx.opened && g !== null && g.kind === 'insert') {
            this.group = null;
            entry = this.addToBatch(tx, endLsn, g);
          } else {
            this.flushGroup();
            this.openTx(tx);
            const commit = this.send(
              commitStatement(formatLsn(endLsn), formatPgTimestamp(tx.commitTs)),
              [],
              tx.finalLsn,
            ).then(
              (r) => lastCommand(r) === 'COMMIT',
              () => false,
            );
            entry = {
              finalLsn: tx.finalLsn,
              endLsn,
              commitTs: tx.commitTs,
              rows: tx.rows,
              commit,
              done: false,
            };
            const e = entry;
            commit.then(() => {
              e.done = true;
            });
          }
          this.inflight.push(entry);
          this.expectedProgress = endLsn;
          this.tx = null;
          await this.waitInflight(this.o.maxInFlightTransactions);
          return;
        }
        case 'careful':
        case 'dead':
        case 'operator-skip': {
          const db = this.o.db;
          if (tx.mode !== 'careful') {
            await tx.recorder?.finish(endLsn);
            if (tx.mode === 'operator-skip') {
              await db.query(
                'DELETE FROM pgfleet.skip_requests WHERE edge = $1 AND commit_lsn = $2::pg_lsn',
                [this.o.edge.id, formatLsn(tx.finalLsn)],
              );
            }
          } else if (this.o.deadLetter === 'discard') {
            await db.query('RELEASE SAVEPOINT pgfleet_change');
          }
          if (this.o.pausedOnCareful && tx.finalLsn === this.o.carefulCommitLsn) {
            await db.query(RESOLVE_PAUSED_SQL, [
              this.o.edge.id,
              formatLsn(tx.finalLsn),
              tx.mode === 'careful' ? 'applied' : 'skipped',
            ]);
          }
          const r = await db.query(commitStatement(formatLsn(endLsn), formatPgTimestamp(tx.commitTs)));
          if (lastCommand(r) !== 'COMMIT') throw new Error('careful transaction rolled back');
          this.expectedProgress = endLsn;
          this.lastAppliedEndLsn = endLsn;
          this.markHandled(endLsn);
          this.lastCommitTs = tx.commitTs;
          this.tx = null;
          if (tx.mode === 'careful')
            this.o.hooks.onTransactionApplied({ endLsn, commitTs: tx.commitTs, rows: tx.rows });
          else
            this.o.hooks.onTransactionSkipped({
              endLsn,
              reason: tx.mode === 'operator-skip' ? 'operator' : 'dead_letter',
            });
          return;
        }
      }
    } catch (err) {
      this.onError(err as Error, tx.finalLsn);
    }
  }

  /** Queues an insert-only transaction (one group, nothing sent yet) into the batch. */
  private addToBatch(tx: OpenTx, endLsn: Lsn, g: Group): InFlight {
    let b = this.batch;
    if (b && b.shapeKey !== g.shapeKey) {
      this.flushBatch();
      b = null;
    }
    if (!b) {
      b = {
        shapeKey: g.shapeKey,
        rel: g.rel,
        setIndexes: g.setIndexes,
        expected: this.expectedProgress,
        ends: [],
        tss: [],
        lo: [],
        hi: [],
        columns: g.columns.map(() => []),
        rows: 0,
        entries: [],
      };
      this.batch = b;
      if (!this.batchFlushScheduled) {
        // Sent once the messages already received are handled: a batch never waits for more.
        this.batchFlushScheduled = true;
        setImmediate(() => {
          this.batchFlushScheduled = false;
          this.flushBatch();
        });
      }
    }
    b.ends.push(formatLsn(endLsn));
    b.tss.push(formatPgTimestamp(tx.commitTs));
    b.lo.push(b.rows + 1);
    b.hi.push(b.rows + g.count);
    for (let j = 0; j < g.columns.length; j++) {
      const target = b.columns[j] as Array<string | null>;
      for (const v of g.columns[j] as Array<string | null>) target.push(v);
    }
    b.rows += g.count;
    let resolve!: (committed: boolean) => void;
    const entry: InFlight = {
      finalLsn: tx.finalLsn,
      endLsn,
      commitTs: tx.commitTs,
      rows: tx.rows,
      commit: new Promise<boolean>((r) => {
        resolve = r;
      }),
      done: false,
    };
    b.entries.push({
      entry,
      resolve: (committed) => {
        entry.done = true;
        resolve(committed);
      },
    });
    if (b.entries.length >= BATCH_MAX_TRANSACTIONS || b.rows >= BATCH_MAX_ROWS) this.flushBatch();
    return entry;
  }

  /**
   * Sends the queued batch as one CALL. On success every transaction in it committed. On
   * failure the ones before the failing transaction did commit (each is its own
   * transaction): origin progress, read right after, says which; the first one past it is
   * replayed on the careful path.
   */
  private flushBatch(): void {
    const b = this.batch;
    if (!b) return;
    this.batch = null;
    if (this.failure) {
      for (const e of b.entries) e.resolve(false);
      return;
    }
    const first = (b.entries[0] as { entry: InFlight }).entry;
    let proc = this.batchProcedures.get(b.shapeKey);
    if (!proc) {
      proc = `pgf_b_${this.statementCounter++}`;
      this.batchProcedures.set(b.shapeKey, proc);
      this.send(insertBatchProcedure(b.rel.table, b.setIndexes, proc), [], first.finalLsn);
    }
    this.cork();
    b.ends.forEach((end, index) => {
      this.batchWaiting.set(end, { batch: b, index });
    });
    const call = this.o.db.query({
      name: proc,
      text: callBatchStatement(proc, b.columns.length),
      values: [formatLsn(b.expected), b.ends, b.tss, b.lo, b.hi, ...b.columns],
    });
    const forget = () => {
      for (const end of b.ends) this.batchWaiting.delete(end);
    };
    const settled = call.then(
      () => {
        forget();
        for (const e of b.entries) e.resolve(true);
      },
      (err: unknown) => {
        forget();
        return this.batchFailed(b, err);
      },
    );
    this.pending.add(settled);
    settled.then(() => this.pending.delete(settled));
  }

  private async batchFailed(b: Batch, err: unknown): Promise<void> {
    const code = sqlStateOf(err);
    const first = (b.entries[0] as { entry: InFlight }).entry;
    let progress: Lsn | null = null;
    if (code !== SQLSTATE_GUARD && code !== IN_FAILED_SQL_TRANSACTION && !isConnectionError(err)) {
      try {
        const { rows } = await this.o.db.query(
          `SELECT coalesce(pg_replication_origin_session_progress(false), '0/0')::text AS lsn`,
        );
        progress = parseLsn(rows[0].lsn);
      } catch (e) {
        this.onError(e as Error, first.finalLsn);
      }
    }
    // Guard failure: a consequence of an earlier failure, nothing of this batch committed.
    const failing = progress === null ? undefined : b.entries.find((e) => e.entry.endLsn > progress);
    if (code === SQLSTATE_GUARD || code === IN_FAILED_SQL_TRANSACTION) {
      // already reported by whatever failed first
    } else if (isConnectionError(err)) this.onError(err as Error, first.finalLsn);
    else if (progress !== null) {
      if (failing) this.onError(err as Error, failing.entry.finalLsn);
      else this.fail({ kind: 'retry', error: err as Error });
    }
    for (const e of b.entries) e.resolve(progress !== null && e.entry.endLsn <= progress);
  }

  private markHandled(endLsn: Lsn): void {
    if (endLsn > this.lastHandledEndLsn) this.lastHandledEndLsn = endLsn;
  }

  // ---------------------------------------------------------------- careful path

  private async careful(
    tx: OpenTx,
    msg:
      | InsertMessage
      | UpdateMessage
      | DeleteMessage
      | { tag: 'truncate'; relationIds: number[]; cascade: boolean; restartIdentity: boolean },
  ): Promise<void> {
    const db = this.o.db;
    try {
      await this.carefulChange(tx, msg);
      if (this.o.deadLetter === 'discard') {
        await db.query('RELEASE SAVEPOINT pgfleet_change');
        await db.query('SAVEPOINT pgfleet_change');
      }
    } catch (err) {
      const code = sqlStateOf(err);
      const transient =
        isConnectionError(err) && !(err instanceof ConflictError)
          ? true
          : code !== undefined && TRANSIENT_SQLSTATES.has(code);
      const decision = decideDeadLetter({
        policy: this.o.deadLetter,
        skipRequested: false,
        transient,
        schemaMismatch: false,
      });
      if (decision === 'retry') throw err;
      const rel = msg.tag === 'truncate' ? null : this.relations.get(msg.relationId);
      const row: DeadLetterRow = {
        commitLsn: tx.finalLsn,
        endLsn: tx.finalLsn,
        xid: tx.xid,
        commitTs: tx.commitTs,
        table: rel ? { schema: rel.table.schema, name: rel.table.name } : null,
        changeKind: msg.tag,
        change: msg.tag === 'truncate' ? { relations: msg.relationIds } : changeImage(rel?.table, msg),
        sqlState: code ?? null,
        error: (err as Error).message,
        action: decision.action,
      };
      this.o.logger.warn(
        {
          commitLsn: formatLsn(tx.finalLsn),
          sqlState: code,
          err: (err as Error).message,
          action: decision.action,
        },
        'transaction refused by target',
      );
      if (decision.action === 'skip_change') {
        await db.query('ROLLBACK TO SAVEPOINT pgfleet_change');
        const recorder = new DeadLetterRecorder(db, this.o.edge, this.o.deadLetter);
        await recorder.begin(row);
        if (msg.tag === 'truncate')
          await recorder.add(
            recordedTruncate(
              msg.relationIds.map((id) => this.rel(id).table),
              msg,
            ),
          );
        else if (rel) await recorder.add(recordedChange(rel.table, msg));
        await recorder.finish(tx.finalLsn);
        return;
      }
      await db.query('ROLLBACK');
      if (decision.action === 'skip_transaction') {
        // The changes before this one were rolled back and those after it are still to come:
        // read the transaction again from its start and record every change (beginRecording).
        this.fail({ kind: 'dead_letter', commitLsn: tx.finalLsn, row, error: err as Error });
        return;
      }
      await this.o.recordPausedDeadLetter(row);
      throw new ApplyPausedError(
        `edge ${this.o.edge.id} paused: transaction ${formatLsn(tx.finalLsn)} (xid ${tx.xid}) failed: ${(err as Error).message}; fix the cause or run pgfleet-mm skip --edge ${this.o.edge.id} --lsn ${formatLsn(tx.finalLsn)}`,
        { edge: this.o.edge.id, commitLsn: formatLsn(tx.finalLsn), xid: tx.xid, sqlState: code },
        { cause: err },
      );
    }
  }

  private async carefulChange(
    tx: OpenTx,
    msg:
      | InsertMessage
      | UpdateMessage
      | DeleteMessage
      | { tag: 'truncate'; relationIds: number[]; cascade: boolean; restartIdentity: boolean },
  ): Promise<void> {
    if (msg.tag === 'truncate') {
      await this.o.db.query(
        truncateStatement(
          msg.relationIds.map((id) => this.rel(id).table),
          msg,
        ),
      );
      return;
    }
    await applyChangeCarefully(this.carefulContext, tx, this.rel(msg.relationId).table, msg);
  }

  private get carefulContext(): CarefulApplyContext {
    const o = this.o;
    const own = new Set([o.sourceOriginId, ...(o.replayOriginId === null ? [] : [o.replayOriginId])]);
    return {
      db: o.db,
      edge: o.edge,
      ownOriginIds: own,
      sourceRank: o.sourceRank,
      rankOfOriginId: o.rankOfOriginId,
      originNameOf: o.originNameOf,
      policyFor: o.policyFor,
      recordErrorConflict: o.recordErrorConflict,
      onConflict: (kind, resolution) => o.hooks.onConflict(kind, resolution),
      logger: o.logger,
    };
  }
}
