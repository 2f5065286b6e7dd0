import { SqlState } from '@pgfleet/connection';
import { formatLsn, type Lsn, parseLsn } from '@pgfleet/wal';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { ConflictPolicy, DeadLetterPolicy } from '../config.js';
import { type ConflictKind, type LocalRowVersion, resolveConflict } from '../conflict.js';
import { decideDeadLetter } from '../dead-letter.js';
import {
  type DeleteMessage,
  type InsertMessage,
  type PgoutputMessage,
  type RelationMessage,
  type Tuple,
  UNCHANGED_TOAST,
  type UpdateMessage,
} from '../decode/messages.js';
import type { DecodeFailure } from '../decode/stream.js';
import { SQLSTATE_GUARD } from '../metadata.js';
import type { Edge } from '../naming.js';
import { shouldSkipTransaction } from '../origin-filter.js';
import { formatPgTimestamp } from '../pg-time.js';
import { ApplyPausedError, ConflictError, SchemaMismatchError } from './errors.js';
import {
  type ApplyTable,
  BATCH_COMMITTED_NOTICE,
  callBatchStatement,
  commitStatement,
  deleteByCtidStatement,
  deleteStatement,
  insertBatchProcedure,
  insertOneStatement,
  insertStatement,
  lastCommand,
  lookupStatement,
  truncateStatement,
  updateByCtidStatement,
  updateStatement,
} from './statements.js';

export type SkipReason = 'echo' | 'empty' | 'dead_letter' | 'operator';

/** Parameters: see the conflictValues array in Applier.carefulChange. */
export const CONFLICT_INSERT_SQL = `INSERT INTO pgfleet.conflicts (edge, source_node, target_node, table_schema, table_name, kind, policy, resolution, reason, key, local_row, remote_row,
                                  local_commit_ts, local_origin, remote_commit_ts, remote_commit_lsn, remote_xid)
   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11::jsonb, $12::jsonb, $13::timestamptz, $14, $15::timestamptz, $16::pg_lsn, $17)`;

/**
 * Same row, unless this very conflict (edge, transaction, kind, key) was recorded with
 * resolution `error` already: a paused edge retries the transaction again and again.
 */
export const ERROR_CONFLICT_INSERT_SQL = `INSERT INTO pgfleet.conflicts (edge, source_node, target_node, table_schema, table_name, kind, policy, resolution, reason, key, local_row, remote_row,
                                  local_commit_ts, local_origin, remote_commit_ts, remote_commit_lsn, remote_xid)
   SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11::jsonb, $12::jsonb, $13::timestamptz, $14, $15::timestamptz, $16::pg_lsn, $17
    WHERE NOT EXISTS (SELECT 1 FROM pgfleet.conflicts
                       WHERE edge = $1 AND remote_commit_lsn = $16::pg_lsn AND kind = $6 AND key = $10::jsonb AND resolution = 'error')`;

/** Target column facts, loaded from the target's catalog (name → format_type). */
export type TargetColumns = Map<string, string>;

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
  loadTargetColumns(schema: string, table: string): Promise<TargetColumns | null>;
  skipRequested(commitLsn: Lsn): Promise<boolean>;
  /** Records a dead letter outside the apply transaction (pause_edge keeps retrying, so it de-duplicates). */
  recordPausedDeadLetter(row: DeadLetterRow): Promise<void>;
  /** Records a conflict resolved as `error` outside the apply transaction (which is rolled back). */
  recordErrorConflict(values: unknown[]): Promise<void>;
  hooks: ApplierHooks;
  logger: Logger;
}

export interface DeadLetterRow {
  commitLsn: Lsn;
  endLsn: Lsn;
  xid: number;
  commitTs: bigint;
  table: { schema: string; name: string } | null;
  changeKind: string | null;
  change: Record<string, unknown> | null;
  sqlState: string | null;
  error: string;
  action: string;
}

/** Why the applier stopped: the edge restarts the stream from origin progress accordingly. */
export type ApplierFailure =
  | { kind: 'replay'; commitLsn: Lsn; error: Error }
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
  mode: 'pending' | 'fast' | 'careful' | 'skip' | 'dead' | 'operator-skip';
  /** Fast path: BEGIN and the guard were sent (deferred until the first statement, see openTx). */
  opened: boolean;
  rows: number;
  deadLetter: DeadLetterRow | null;
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
          deadLetter: null,
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
        if (tx.mode === 'skip' || tx.mode === 'dead' || tx.mode === 'operator-skip') return;
        tx.rows++;
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
    if (this.o.carefulCommitLsn !== null && tx.finalLsn === this.o.carefulCommitLsn) {
      await this.waitInflight(0);
      if (this.failure) return;
      if (await this.o.skipRequested(tx.finalLsn)) {
        tx.mode = 'operator-skip';
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
    const cols = await this.o.loadTargetColumns(msg.schema, msg.name);
    const tableId = `${msg.schema}.${msg.name}`;
    if (!cols) {
      throw new SchemaMismatchError(
        `edge ${this.o.edge.id}: table ${tableId} does not exist on ${this.o.edge.target}`,
        {
          edge: this.o.edge.id,
          table: tableId,
        },
      );
    }
    const columns = msg.columns.map((c) => {
      const type = cols.get(c.name);
      if (type === undefined) {
        throw new SchemaMismatchError(
          `edge ${this.o.edge.id}: column "${c.name}" of ${tableId} exists on ${this.o.edge.source} but not on ${this.o.edge.target}; add it on every node (DDL is not replicated), the edge resumes by itself`,
          { edge: this.o.edge.id, table: tableId, column: c.name },
        );
      }
      return { name: c.name, type, isKey: c.isKey };
    });
    const keyIndexes = columns.flatMap((c, i) => (c.isKey ? [i] : []));
    if (keyIndexes.length === 0) {
      throw new SchemaMismatchError(
        `edge ${this.o.edge.id}: ${tableId} has no replica identity on ${this.o.edge.source}`,
        {
          edge: this.o.edge.id,
          table: tableId,
        },
      );
    }
    // A batch holds the old relation's shape: send it before the relation changes.
    this.flushBatch();
    this.relations.set(msg.relationId, {
      msg,
      table: {
        schema: msg.schema,
        name: msg.name,
        columns,
        keyIndexes,
        identityFull: msg.replicaIdentity === 'f',
      },
    });
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
      const keyChanged = msg.key !== null;
      setIndexes = newT.flatMap((v, i) =>
        v === UNCHANGED_TOAST || (!keyChanged && t.columns[i]?.isKey) ? [] : [i],
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
            await db.query('BEGIN');
            const row = tx.deadLetter ?? {
              commitLsn: tx.finalLsn,
              endLsn,
              xid: tx.xid,
              commitTs: tx.commitTs,
              table: null,
              changeKind: null,
              change: null,
              sqlState: null,
              error: 'skipped by operator request',
              action: 'skipped_by_operator',
            };
            await this.insertDeadLetter({ ...row, endLsn });
            if (tx.mode === 'operator-skip') {
              await db.query(
                'DELETE FROM pgfleet.skip_requests WHERE edge = $1 AND commit_lsn = $2::pg_lsn',
                [this.o.edge.id, formatLsn(tx.finalLsn)],
              );
            }
          } else if (this.o.deadLetter === 'discard') {
            await db.query('RELEASE SAVEPOINT pgfleet_change');
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
        await this.insertDeadLetter(row);
        return;
      }
      await db.query('ROLLBACK');
      if (decision.action === 'skip_transaction') {
        tx.mode = 'dead';
        tx.deadLetter = row;
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

  private async insertDeadLetter(r: DeadLetterRow): Promise<void> {
    await this.o.db.query(
      `INSERT INTO pgfleet.dead_letters (edge, source_node, target_node, commit_lsn, end_lsn, xid, commit_ts, table_schema, table_name, change_kind, change, sqlstate, error, policy, action)
       VALUES ($1, $2, $3, $4::pg_lsn, $5::pg_lsn, $6, $7::timestamptz, $8, $9, $10, $11::jsonb, $12, $13, $14, $15)`,
      deadLetterValues(this.o.edge, r, this.o.deadLetter),
    );
  }

  private async carefulChange(
    tx: OpenTx,
    msg:
      | InsertMessage
      | UpdateMessage
      | DeleteMessage
      | { tag: 'truncate'; relationIds: number[]; cascade: boolean; restartIdentity: boolean },
  ): Promise<void> {
    const db = this.o.db;
    if (msg.tag === 'truncate') {
      await db.query(
        truncateStatement(
          msg.relationIds.map((id) => this.rel(id).table),
          msg,
        ),
      );
      return;
    }
    const rel = this.rel(msg.relationId);
    const t = rel.table;
    const keySource: Tuple | null =
      msg.tag === 'insert'
        ? msg.newTuple
        : msg.tag === 'update'
          ? (msg.key ?? msg.old ?? msg.newTuple)
          : (msg.key ?? msg.old);
    if (!keySource) throw new Error('change without key');
    const keyValues = t.keyIndexes.map((i) => textOf(keySource[i]));
    const { rows } = await db.query(lookupStatement(t), keyValues);
    const local = rows[0] as
      | {
          ctid: string;
          row: unknown;
          commit_us: string | null;
          roident: string | number | null;
          mine: boolean;
        }
      | undefined;
    const roident = local?.roident === null || local?.roident === undefined ? null : Number(local.roident);
    const own = local !== undefined && (local.mine || roident === this.o.sourceOriginId);
    let kind: ConflictKind | null = null;
    if (msg.tag === 'insert') kind = local ? 'insert_exists' : null;
    else if (msg.tag === 'update') kind = !local ? 'update_missing' : own ? null : 'update_differs';
    else kind = !local ? 'delete_missing' : own ? null : 'delete_differs';

    let apply = true;
    if (kind) {
      const policy = this.o.policyFor(t.schema, t.name);
      const version: LocalRowVersion | null = local
        ? {
            commitTs: local.commit_us === null ? null : BigInt(local.commit_us),
            originRank: this.o.rankOfOriginId(roident ?? 0),
          }
        : null;
      const decision = resolveConflict(kind, policy, version, {
        commitTs: tx.commitTs,
        sourceRank: this.o.sourceRank,
      });
      const conflictValues = [
        this.o.edge.id,
        this.o.edge.source,
        this.o.edge.target,
        t.schema,
        t.name,
        kind,
        policy,
        decision.resolution,
        decision.reason,
        JSON.stringify(Object.fromEntries(t.keyIndexes.map((i, j) => [t.columns[i]?.name, keyValues[j]]))),
        local ? JSON.stringify(local.row) : null,
        msg.tag === 'delete' ? null : JSON.stringify(changeImage(t, msg)?.new ?? null),
        version?.commitTs != null ? formatPgTimestamp(version.commitTs) : null,
        local ? this.o.originNameOf(roident ?? 0) : null,
        formatPgTimestamp(tx.commitTs),
        formatLsn(tx.finalLsn),
        tx.xid,
      ];
      // Under policy `error` the apply transaction is rolled back, which would take a
      // conflict row written inside it along: record that one outside, once.
      if (decision.resolution === 'error') await this.o.recordErrorConflict(conflictValues);
      else await db.query(CONFLICT_INSERT_SQL, conflictValues);
      this.o.hooks.onConflict(kind, decision.resolution);
      this.o.logger.info(
        {
          table: `${t.schema}.${t.name}`,
          kind,
          resolution: decision.resolution,
          reason: decision.reason,
        },
        'conflict',
      );
      if (decision.resolution === 'error') {
        throw new ConflictError(
          `conflict ${kind} on ${t.schema}.${t.name} key ${JSON.stringify(keyValues)} under policy error`,
          {
            kind,
            table: `${t.schema}.${t.name}`,
          },
        );
      }
      apply = decision.resolution === 'apply';
    }
    if (!apply) return;
    if (msg.tag === 'insert') {
      const idx = t.columns.map((_, i) => i);
      if (local)
        await db.query(updateByCtidStatement(t, idx), [
          local.ctid,
          ...idx.map((i) => textOf(msg.newTuple[i])),
        ]);
      else
        await db.query(
          insertOneStatement(t, idx),
          idx.map((i) => textOf(msg.newTuple[i])),
        );
    } else if (msg.tag === 'update') {
      if (!local) return;
      const idx = msg.newTuple.flatMap((v, i) => (v === UNCHANGED_TOAST ? [] : [i]));
      await db.query(updateByCtidStatement(t, idx), [local.ctid, ...idx.map((i) => textOf(msg.newTuple[i]))]);
    } else if (local) {
      await db.query(deleteByCtidStatement(t), [local.ctid]);
    }
  }
}

function textOf(v: string | null | typeof UNCHANGED_TOAST | undefined): string | null {
  return v === UNCHANGED_TOAST || v === undefined ? null : v;
}

function tupleObject(t: ApplyTable, tuple: Tuple | null): Record<string, string | null> | null {
  if (!tuple) return null;
  const out: Record<string, string | null> = {};
  tuple.forEach((v, i) => {
    if (v !== UNCHANGED_TOAST) out[t.columns[i]?.name ?? `#${i}`] = v;
  });
  return out;
}

function changeImage(
  t: ApplyTable | undefined,
  msg: InsertMessage | UpdateMessage | DeleteMessage,
): Record<string, unknown> | null {
  if (!t) return null;
  if (msg.tag === 'insert') return { new: tupleObject(t, msg.newTuple) };
  if (msg.tag === 'update')
    return { key: tupleObject(t, msg.key ?? msg.old), new: tupleObject(t, msg.newTuple) };
  return { key: tupleObject(t, msg.key ?? msg.old) };
}

export function deadLetterValues(edge: Edge, r: DeadLetterRow, policy: DeadLetterPolicy): unknown[] {
  return [
    edge.id,
    edge.source,
    edge.target,
    formatLsn(r.commitLsn),
    formatLsn(r.endLsn),
    r.xid,
    formatPgTimestamp(r.commitTs),
    r.table?.schema ?? null,
    r.table?.name ?? null,
    r.changeKind,
    r.change === null ? null : JSON.stringify(r.change),
    r.sqlState,
    r.error,
    policy,
    r.action,
  ];
}
