import { classifyDriverError } from '@pgfleet/connection';
import { type Lsn, parseLsn } from '@pgfleet/wal';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { ConflictPolicy, DeadLetterPolicy } from '../config.js';
import { readChange, TupleSpans } from '../decode/change-reader.js';
import type { DeleteMessage, InsertMessage, TruncateMessage, UpdateMessage } from '../decode/messages.js';
import { parsePgoutput } from '../decode/pgoutput-parser.js';
import type { Edge } from '../naming.js';
import { ApplyConnection } from './apply-connection.js';
import type { SessionParams } from './batch.js';
import { Batcher } from './batcher.js';
import { applyChangeCarefully, type CarefulApplyContext } from './careful-change.js';
import { type ClientMode, ClientTransaction, TransactionRefused } from './client-apply.js';
import type { DeadLetterRow } from './dead-letter-recorder.js';
import { ApplyPausedError, SchemaMismatchError } from './errors.js';
import type { ApplierFailure } from './failure.js';
import type { ConflictSqlContext, GroupShape } from './group-sql.js';
import { CommitLedger } from './ledger.js';
import type { ApplyPort } from './port.js';
import { committedProgressSql } from './progress-mark.js';
import { routeTransaction, shouldStream } from './routing.js';
import { type OriginInfo, type SeenTracker, versionSeen } from './seen.js';
import { persistSeenSql } from './shape-sql.js';
import { type ApplyTable, lastCommand } from './statements.js';
import { StreamedTx } from './streamed-tx.js';
import { applyTableFor } from './target-table.js';
import { type ApplyRelation, PendingTx } from './tx-builder.js';

/** What a handled message's place in the backlog holds until the backlog is emptied. */
const HANDLED = Buffer.alloc(0);

export type { ApplierFailure } from './failure.js';

/** The target's replication origins as the applier uses them; the edge reads them again now and then. */
export interface OriginView {
  /** Changes whenever the origins were read again. */
  epoch: number;
  byId: ReadonlyMap<number, OriginInfo>;
  session: SessionParams;
  /** Rank of the node behind an origin id (0: the target), for the change-by-change path. */
  rankOf(id: number): number;
  nameOf(id: number): string;
}

export interface ApplierOptions {
  edge: Edge;
  /** Apply session: origin set up, session_replication_role = replica, pipeline mode. */
  db: pg.Client;
  port: ApplyPort;
  sourceRank: number;
  policyFor(schema: string, table: string): ConflictPolicy;
  deadLetter: DeadLetterPolicy;
  batchRows: number;
  maxInFlightTransactions: number;
  /** Origin progress when the stream started: what the first transaction's guard expects. */
  startProgress: Lsn;
  /** Replay this transaction (by commit LSN) change by change. */
  carefulCommitLsn: Lsn | null;
  /** The edge was paused on carefulCommitLsn: once it commits or is skipped, its `pause` dead letter is resolved. */
  pausedOnCareful: boolean;
  /** Record this transaction (by commit LSN) whole as a dead letter and skip it. */
  deadLetterTx: { commitLsn: Lsn; row: DeadLetterRow } | null;
  seen: SeenTracker;
  origins(): OriginView;
  /** Test seam: replaces a transaction's commit time as this edge sees it. */
  commitTsOf?(xid: number, commitTs: bigint): bigint;
  logger: Logger;
}

type TxMode = 'pending' | 'echo' | 'batched' | 'streamed' | 'client';

interface OpenTx {
  finalLsn: Lsn;
  commitTs: bigint;
  xid: number;
  seenVersion: number;
  origin: string | null;
  mode: TxMode;
  pending: PendingTx;
  streamed: StreamedTx | null;
  client: ClientTransaction | null;
}

/** Once a transaction holds more than this, it is streamed instead of held whole. */
const STREAM_BYTES = 16 << 20;
const STREAM_GROUPS = 32;
/** Unanswered statements of a streamed transaction before the stream waits. */
const MAX_PENDING_STATEMENTS = 64;

/**
 * Applies one edge's stream to the target: receives pgoutput messages, groups each source
 * transaction's changes into set-based statements, applies runs of transactions of one
 * shape with one call (batched) or large ones statement by statement (streamed), both
 * with conflicts decided and recorded in SQL, and replays a transaction change by change
 * only when the edge asks (after the target refused it: dead letters). Every applied
 * source transaction is its own target transaction with the source's end LSN and commit
 * time; the commit ledger tracks what committed.
 *
 * Messages are handled synchronously as they arrive; while something must be awaited (a
 * relation's target table, a change-by-change step, room in flight), later messages wait
 * in a backlog and the stream is paused.
 */
export class Applier {
  readonly ledger: CommitLedger;
  private readonly conn: ApplyConnection;
  private readonly batcher: Batcher;
  private readonly relations = new Map<number, ApplyRelation>();
  private relationVersion = 0;
  private tx: OpenTx | null = null;
  private expected: Lsn;
  private failure: ApplierFailure | null = null;
  private resolveFailed!: (f: ApplierFailure) => void;
  /** Settles when the applier gives up; the edge then restarts the stream. */
  readonly failed: Promise<ApplierFailure>;
  private busy = false;
  /** Holds on message handling (Batcher: while it recovers from a failed call). */
  private holds = 0;
  private readonly backlog: Buffer[] = [];
  private backlogHead = 0;
  private readonly oldSpans = new TupleSpans();
  private readonly newSpans = new TupleSpans();
  private persistedVersion = 0;
  private vector: { version: number; epoch: number; v: Array<bigint | null> } | null = null;
  private flushTimer: NodeJS.Timeout | null = null;
  private flushing = false;

  constructor(private readonly o: ApplierOptions) {
    this.expected = o.startProgress;
    this.failed = new Promise((resolve) => {
      this.resolveFailed = resolve;
    });
    this.ledger = new CommitLedger(o.startProgress, (run) => o.port.report({ type: 'applied', ...run }));
    this.conn = new ApplyConnection(o.db, o.edge, (err) => this.onError(err, null));
    const ctx = {
      conn: this.conn,
      ledger: this.ledger,
      session: () => o.origins().session,
      conflictContext: (g: GroupShape) => this.conflictContext(g),
      fail: (f: ApplierFailure) => this.fail(f),
    };
    this.batcher = new Batcher({
      ...ctx,
      readProgress: () => this.readProgress(),
      hold: () => this.hold(),
      otherPathsInFlight: () => this.tx?.streamed != null || this.tx?.client != null,
      logger: o.logger,
    });
    this.streamCtx = { ...ctx, edgeId: o.edge.id, origin: o.edge.origin };
  }

  private readonly streamCtx: ConstructorParameters<typeof StreamedTx>[0];

  get lastAppliedEndLsn(): Lsn {
    return this.ledger.lastApplied;
  }

  get lastHandledEndLsn(): Lsn {
    return this.ledger.lastHandled;
  }

  get lastCommitTs(): bigint | null {
    return this.ledger.lastCommitTs;
  }

  /**
   * Something was received and not yet committed on the target, or the applier failed, or
   * the source's view (seen) moved without being recorded: nothing past the last commit may
   * be reported to the source.
   */
  inFlight(): boolean {
    return (
      this.tx !== null ||
      this.busy ||
      this.backlog.length > this.backlogHead ||
      this.batcher.waiting > 0 ||
      this.ledger.size > 0 ||
      this.flushing ||
      this.failure !== null ||
      this.o.seen.version !== this.persistedVersion
    );
  }

  hasFailed(): boolean {
    return this.failure !== null;
  }

  /** Sends what is queued and waits until every statement sent was answered. */
  async drain(): Promise<void> {
    this.batcher.flush();
    await this.conn.whenPendingBelow(1);
  }

  /** A pgoutput message; `buf` is only valid during the call (node-pg reuses its memory). */
  receive(buf: Buffer): void {
    if (this.failure) return;
    if (this.busy || this.holds > 0 || this.backlog.length > this.backlogHead) {
      this.backlog.push(Buffer.from(buf));
      return;
    }
    this.step(buf);
  }

  private step(buf: Buffer): void {
    let r: Promise<void> | undefined;
    try {
      r = this.handle(buf);
    } catch (err) {
      this.onError(err as Error, this.tx);
      return;
    }
    if (!r) return;
    this.busy = true;
    this.o.port.pause();
    r.then(
      () => {
        this.busy = false;
        this.drainBacklog();
      },
      (err: Error) => {
        this.busy = false;
        this.onError(err, this.tx);
      },
    );
  }

  private drainBacklog(): void {
    while (!this.busy && this.holds === 0 && !this.failure && this.backlogHead < this.backlog.length) {
      const b = this.backlog[this.backlogHead] as Buffer;
      this.backlog[this.backlogHead++] = HANDLED; // lets the message's copy go
      this.step(b);
    }
    if (this.backlogHead >= this.backlog.length) {
      this.backlog.length = 0;
      this.backlogHead = 0;
      if (!this.busy && this.holds === 0 && !this.failure) this.o.port.resume();
    }
  }

  private hold(): () => void {
    this.holds++;
    this.o.port.pause();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.holds--;
      this.drainBacklog();
    };
  }

  private handle(buf: Buffer): Promise<void> | undefined {
    switch (buf[0]) {
      case 0x42 /* B */:
        {
          const xid = buf.readUInt32BE(17);
          let commitTs = buf.readBigInt64BE(9);
          if (this.o.commitTsOf) commitTs = this.o.commitTsOf(xid, commitTs);
          const finalLsn = buf.readBigUInt64BE(1) as Lsn;
          this.tx = {
            finalLsn,
            commitTs,
            xid,
            seenVersion: this.o.seen.version,
            origin: null,
            mode: 'pending',
            pending: new PendingTx(finalLsn, commitTs, xid, this.o.seen.version),
            streamed: null,
            client: null,
          };
          return;
        }
      case 0x4f /* O */:
        {
          const t = this.tx;
          if (!t) return;
          const end = buf.indexOf(0, 9);
          t.origin = buf.toString('utf8', 9, end < 0 ? buf.length : end);
          t.mode = 'echo';
          this.o.seen.echo(t.origin, t.commitTs);
          return;
        }
      case 0x52 /* R */:
        return this.onRelation(buf);
      case 0x49 /* I */:
      case 0x55 /* U */:
      case 0x44 /* D */:
      case 0x54 /* T */:
        return this.onChange(buf);
      case 0x43 /* C */:
        return this.onCommit(buf.readBigUInt64BE(10) as Lsn);
      default:
        return; // Type and logical decoding messages carry nothing to apply.
    }
  }

  private onRelation(buf: Buffer): Promise<void> {
    const msg = parsePgoutput(buf);
    if (msg.tag !== 'relation') throw new Error('not a relation message');
    return this.o.port.loadTargetTable(msg.schema, msg.name).then((target) => {
      const table = applyTableFor(this.o.edge, msg, target);
      this.relations.set(msg.relationId, { id: msg.relationId, version: ++this.relationVersion, table });
    });
  }

  private rel(id: number): ApplyRelation {
    const r = this.relations.get(id);
    if (!r) throw new Error(`change for unknown relation ${id} (no relation message)`);
    return r;
  }

  private onChange(buf: Buffer): Promise<void> | undefined {
    const t = this.tx;
    if (!t) throw new Error(`change 0x${buf[0]?.toString(16)} outside a transaction`);
    if (t.mode === 'echo') return;
    if (t.mode === 'pending') {
      const route = routeTransaction({
        origin: t.origin,
        finalLsn: t.finalLsn,
        deadLetterCommitLsn: this.o.deadLetterTx?.commitLsn ?? null,
        carefulCommitLsn: this.o.carefulCommitLsn,
      });
      if (route === 'dead' || route === 'careful') {
        const msg = parsePgoutput(buf) as InsertMessage | UpdateMessage | DeleteMessage | TruncateMessage;
        return this.startClient(t, route).then(() =>
          (t.client as ClientTransaction).change(msg, (id) => this.rel(id).table),
        );
      }
      t.mode = 'batched';
    }
    if (t.mode === 'client') {
      const msg = parsePgoutput(buf) as InsertMessage | UpdateMessage | DeleteMessage | TruncateMessage;
      return (t.client as ClientTransaction).change(msg, (id) => this.rel(id).table);
    }
    if (buf[0] === 0x54 /* T */) {
      const msg = parsePgoutput(buf) as TruncateMessage;
      const s = this.streamed(t);
      this.sendGroups(t, true);
      s.truncate(
        msg.relationIds.map((id) => this.rel(id).table),
        msg,
      );
      t.pending.rows++;
      return this.roomForStatements();
    }
    const rel = this.rel(buf.readUInt32BE(1));
    if (rel.table.identityFull) {
      // No key to match on: each change is applied on its own (init refuses such tables).
      const msg = parsePgoutput(buf) as InsertMessage | UpdateMessage | DeleteMessage;
      this.streamed(t);
      this.sendGroups(t, true);
      t.pending.rows++;
      return applyChangeCarefully(this.carefulContext(), t, rel.table, msg);
    }
    t.pending.add(rel, readChange(buf, this.oldSpans, this.newSpans), buf, this.o.batchRows);
    if (t.mode === 'batched') {
      const limits = { rows: 4 * this.o.batchRows, bytes: STREAM_BYTES, groups: STREAM_GROUPS };
      if (
        !shouldStream(
          { rows: t.pending.rows, bytes: t.pending.bytes, groups: t.pending.groups.length },
          limits,
        )
      )
        return;
      this.streamed(t);
    }
    this.sendGroups(t, false);
    return this.roomForStatements();
  }

  /** Switches the open transaction to streamed (once). */
  private streamed(t: OpenTx): StreamedTx {
    if (t.streamed) return t.streamed;
    this.batcher.flush();
    t.streamed = new StreamedTx(
      this.streamCtx,
      t.pending,
      this.expected,
      this.seenVector(),
      this.persistFor(t),
    );
    t.mode = 'streamed';
    return t.streamed;
  }

  /** Sends the groups of a streamed transaction that are complete (every one when `all`). */
  private sendGroups(t: OpenTx, all: boolean): void {
    const s = t.streamed as StreamedTx;
    const groups = t.pending.groups;
    const last = groups[groups.length - 1];
    const keepLast = !all && last !== undefined && last.rows < this.o.batchRows;
    const send = keepLast ? groups.slice(0, -1) : groups;
    for (const g of send) s.group(g);
    t.pending.keepOnly(keepLast ? last : undefined);
  }

  private roomForStatements(): Promise<void> | undefined {
    if (this.conn.pending < MAX_PENDING_STATEMENTS) return;
    return this.conn.whenPendingBelow(MAX_PENDING_STATEMENTS / 4);
  }

  private onCommit(endLsn: Lsn): Promise<void> | undefined {
    const t = this.tx;
    if (!t) return;
    this.tx = null;
    switch (t.mode) {
      case 'pending':
      case 'echo': {
        this.ledger.handled(endLsn);
        this.o.port.report({ type: 'skipped', endLsn, reason: t.mode === 'echo' ? 'echo' : 'empty' });
        this.scheduleSeenFlush();
        return;
      }
      case 'batched': {
        const ready = { tx: t.pending, endLsn, seen: this.seenVector(), persist: this.persistFor(t) };
        if (!this.batcher.add(ready, this.expected)) {
          // A shape without a procedure of its own (too many shapes this session): stream it.
          this.batcher.flush();
          const s = new StreamedTx(this.streamCtx, t.pending, this.expected, ready.seen, ready.persist);
          for (const g of t.pending.groups) s.group(g);
          s.commit(endLsn);
        }
        this.expected = endLsn;
        return this.roomInFlight();
      }
      case 'streamed': {
        this.sendGroups(t, true);
        (t.streamed as StreamedTx).commit(endLsn);
        this.expected = endLsn;
        return this.roomInFlight();
      }
      case 'client':
        return this.commitClient(t, endLsn);
    }
  }

  private roomInFlight(): Promise<void> | undefined {
    const max = this.o.maxInFlightTransactions;
    if (this.ledger.size + this.batcher.waiting < max) return;
    this.batcher.flush();
    return this.ledger.whenBelow(Math.max(1, Math.floor(max / 2)));
  }

  // ------------------------------------------------------------ change-by-change transactions

  private async startClient(t: OpenTx, route: 'dead' | 'careful'): Promise<void> {
    this.batcher.flush();
    await this.ledger.whenBelow(1);
    if (this.failure) throw new Error('applier failed');
    let mode: ClientMode = route;
    if (route === 'careful' && (await this.o.port.skipRequested(t.finalLsn))) mode = 'operator-skip';
    t.client = new ClientTransaction(
      {
        db: this.o.db,
        edge: this.o.edge,
        deadLetter: this.o.deadLetter,
        careful: this.carefulContext(),
        resolvesPause: this.o.pausedOnCareful && t.finalLsn === this.o.carefulCommitLsn,
        recordPausedDeadLetter: (row) => this.o.port.recordOutside({ type: 'paused_dead_letter', row }),
        logger: this.o.logger,
      },
      { finalLsn: t.finalLsn, commitTs: t.commitTs, xid: t.xid },
      mode,
    );
    t.mode = 'client';
    await t.client.begin(mode === 'dead' ? (this.o.deadLetterTx?.row ?? null) : null);
  }

  private async commitClient(t: OpenTx, endLsn: Lsn): Promise<void> {
    const c = t.client as ClientTransaction;
    if (this.o.seen.version !== this.persistedVersion)
      await this.o.db.query(persistSeenSql(this.o.edge.id), [this.persistFor(t)]);
    const outcome = await c.commit(endLsn);
    this.expected = endLsn;
    this.ledger.sent(endLsn, t.commitTs, c.rows);
    if (outcome === 'applied') this.ledger.confirmThrough(endLsn);
    else {
      this.ledger.committedWithoutData(endLsn, t.commitTs);
      this.o.port.report({ type: 'skipped', endLsn, reason: outcome });
    }
  }

  private carefulContext(): CarefulApplyContext {
    const o = this.o;
    const view = o.origins();
    const vector = this.seenVector();
    return {
      db: o.db,
      edge: o.edge,
      seen: (ts, id) => versionSeen(ts, id, o.seen.floor, vector),
      sourceRank: o.sourceRank,
      rankOfOriginId: (id) => view.rankOf(id),
      originNameOf: (id) => view.nameOf(id),
      policyFor: o.policyFor,
      recordErrorConflict: (values) => o.port.recordOutside({ type: 'error_conflict', values }),
      onConflict: () => {}, // the edge reports conflicts once committed (conflict-tail.ts)
      logger: o.logger,
    };
  }

  // ------------------------------------------------------------ what the source had seen

  private seenVector(): Array<bigint | null> {
    const view = this.o.origins();
    const v = this.vector;
    if (v && v.version === this.o.seen.version && v.epoch === view.epoch) return v.v;
    const fresh = this.o.seen.vector(view.byId, this.o.edge.target, this.o.edge.source);
    this.vector = { version: this.o.seen.version, epoch: view.epoch, v: fresh };
    return fresh;
  }

  /** The pgfleet.edge_seen document to record with this transaction, when the source's view moved. */
  private persistFor(t: OpenTx): string | null {
    if (t.seenVersion === this.persistedVersion) return null;
    this.persistedVersion = t.seenVersion;
    return this.o.seen.toJson();
  }

  /**
   * Echoes moved what the source had seen but no transaction of the source followed to
   * record it: once the edge is idle, a small transaction records it, so that the source
   * may be told the echoes are handled (the stream would not send them again after a
   * restart). It commits synchronously: an acknowledgement past the echoes must not
   * outlive a crash of the target. Origin progress stays at the last applied transaction
   * (the commit carries the session's origin, without a new position).
   */
  private scheduleSeenFlush(): void {
    if (this.flushTimer || this.o.seen.version === this.persistedVersion) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = null;
      if (this.failure || this.o.seen.version === this.persistedVersion) return;
      const idle =
        !this.tx && !this.busy && this.batcher.waiting === 0 && this.ledger.size === 0 && !this.flushing;
      if (!idle) return this.scheduleSeenFlush();
      const version = this.o.seen.version;
      this.flushing = true;
      this.conn.send('BEGIN').catch(() => {});
      this.conn.send('SET LOCAL synchronous_commit = on').catch(() => {});
      this.conn.send(persistSeenSql(this.o.edge.id), [this.o.seen.toJson()]).catch(() => {});
      this.conn.send('COMMIT').then(
        (r) => {
          this.flushing = false;
          if (lastCommand(r) !== 'COMMIT')
            return this.fail({ kind: 'retry', error: new Error('recording the source view rolled back') });
          this.persistedVersion = version;
          this.scheduleSeenFlush();
        },
        (err: Error) => {
          this.flushing = false;
          this.onError(err, null);
        },
      );
    }, 200);
  }

  // ------------------------------------------------------------ conflicts and failures

  private conflictContext(g: GroupShape): ConflictSqlContext {
    return {
      edge: this.o.edge,
      sourceRank: this.o.sourceRank,
      policy: this.o.policyFor(g.table.schema, g.table.name),
    };
  }

  /**
   * Origin progress read on another connection: every transaction sent up to it committed
   * (a call confirms its run when it returns; this confirms the transactions of a run that
   * committed while a later one of it still waits on a lock).
   */
  committedThrough(progress: Lsn): void {
    this.ledger.confirmThrough(progress);
  }

  private async readProgress(): Promise<Lsn> {
    const { rows } = await this.o.db.query(`SELECT ${committedProgressSql('$1', false, true)}::text AS lsn`, [
      this.o.edge.origin,
    ]);
    return parseLsn(rows[0].lsn);
  }

  private fail(f: ApplierFailure): void {
    if (this.failure) return;
    this.failure = f;
    this.ledger.release();
    this.o.port.pause();
    this.resolveFailed(f);
  }

  private onError(err: Error, t: OpenTx | null): void {
    const k = classifyDriverError(err);
    if (err instanceof SchemaMismatchError || err instanceof ApplyPausedError)
      this.fail({ kind: 'pause', error: err });
    else if (err instanceof TransactionRefused && t)
      this.fail({ kind: 'dead_letter', commitLsn: t.finalLsn, row: err.row, error: err });
    else if (k.kind === 'server' && t) this.fail({ kind: 'replay', commitLsn: t.finalLsn, error: err });
    else this.fail({ kind: 'retry', error: err });
  }
}

export type { ApplyTable };
