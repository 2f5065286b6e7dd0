import {
  backoffDelay,
  NodeUnreachableError,
  pause,
  pgClientConfig,
  toPgfleetError,
} from '@pgfleet/connection';
import { formatLsn, type Lsn, parseLsn, ZERO_LSN } from '@pgfleet/wal';
import type pg from 'pg';
import type { Logger } from 'pino';
import { ackPosition } from './ack.js';
import { Applier, type ApplierFailure } from './apply/applier.js';
import { ERROR_CONFLICT_INSERT_SQL } from './apply/careful-change.js';
import {
  DEAD_LETTER_INSERT_SQL,
  type DeadLetterRow,
  deadLetterValues,
} from './apply/dead-letter-recorder.js';
import { ApplyPausedError } from './apply/errors.js';
import type { ApplyEvent, ApplyPort } from './apply/port.js';
import { committedProgressSql } from './apply/progress-mark.js';
import { SeenTracker } from './apply/seen.js';
import { loadTargetTable } from './apply/target-table.js';
import type { NodeConfig, ResolvedConfig } from './config.js';
import { pruneConflicts } from './conflict-retention.js';
import { ConflictTail } from './conflict-tail.js';
import { ReplicationStream } from './decode/replication-stream.js';
import { StreamedTransactions } from './decode/streamed-transactions.js';
import {
  openApplySession,
  openControl,
  openSource,
  originView,
  readOrigins,
  readTargetFacts,
} from './edge-session.js';
import { readOriginAndStandby, StandbyAckBound } from './ha/ack-bound.js';
import { claimEdge } from './ha/claim.js';
import { EdgeHa, standbySlotsOf } from './ha/edge-ha.js';
import { assertWritable } from './ha/primary.js';
import { GatedStream, StandbyFlushGate } from './ha/standby-gate.js';
import type { EdgeMetrics } from './metrics.js';
import type { Edge } from './naming.js';
import { pgMicrosToUnixMs } from './pg-time.js';
import { VALUE_TEXT_SETTINGS } from './session-settings.js';

export type EdgeState = 'starting' | 'streaming' | 'paused' | 'reconnecting' | 'stopped';

export interface EdgeStatus {
  edge: string;
  source: string;
  target: string;
  state: EdgeState;
  /** Why the edge is paused or reconnecting (never holds a password). */
  lastError: { code: string; message: string; details?: Record<string, unknown> } | null;
  /** end_lsn of the last transaction committed on the target. */
  lastAppliedLsn: string | null;
  /** Position last reported to the source as flushed. */
  ackedLsn: string | null;
  /** Source WAL end from its last keepalive. */
  sourceWalEnd: string | null;
  lagBytes: number | null;
  lagSeconds: number | null;
  /**
   * How echoes are suppressed on this edge: `server` (PostgreSQL 16+ source, stream opened
   * with origin 'none', echoes never arrive) or `client` (older source: every transaction
   * carrying an Origin message is dropped here). Null until the first connection.
   */
  originFilter: 'server' | 'client' | null;
  appliedTransactions: number;
  appliedRows: number;
  /** Transactions handled without applying them (echoes, empty, dead letters, operator skips). */
  skippedTransactions: number;
  /** Of those, echoes dropped client-side (always 0 with originFilter `server`). */
  echoSkippedTransactions: number;
  conflicts: number;
  restarts: number;
  /**
   * With apply.streaming on: transactions the source is streaming that have not committed
   * yet, and the bytes spooled for them in apply.spoolDirectory. Null with it off.
   */
  streamedInProgress: number | null;
  spooledBytes: number | null;
  /** Server of a primary + standby (or multi-host) source / target this edge streams from / applies to. */
  sourceServer: string | null;
  targetServer: string | null;
}

export interface EdgeRunnerOptions {
  edge: Edge;
  config: ResolvedConfig;
  logger: Logger;
  metrics: EdgeMetrics;
  signal: AbortSignal;
  now?: () => number;
  testHooks?: EdgeTestHooks;
  /** Who this replicator is, recorded with the edge's claim on its target (see ha/claim.ts). */
  holder?: string;
}

/**
 * Fault-injection seams for end-to-end tests; never set in production. `commitTs` may
 * replace a source transaction's commit timestamp as this edge sees it (to force an exact
 * tie, which real clocks cannot produce on demand).
 */
export interface EdgeTestHooks {
  commitTs?(edge: string, xid: number, commitTs: bigint): bigint;
}

/**
 * pg ClientConfig of the replication connection (decode/replication-stream.ts): the walsender
 * renders every value's text under these settings (see session-settings.ts).
 */
export function replicationClientConfig(conninfo: string, applicationName: string): pg.ClientConfig {
  return {
    ...pgClientConfig(conninfo, { applicationName, settings: VALUE_TEXT_SETTINGS }),
    keepAlive: true,
    connectionTimeoutMillis: 10_000,
  };
}

/**
 * Drives one edge forever: stream from the source slot, apply on the target, report
 * durable progress, and start over from origin progress after any failure (with backoff
 * for connection problems, on the careful path for a transaction that failed to apply,
 * after a pause for schema mismatches and dead letters).
 */
export class EdgeRunner {
  private readonly source: NodeConfig;
  private readonly target: NodeConfig;
  private readonly log: Logger;
  private st: EdgeStatus;
  private careful: Lsn | null = null;
  /** A transaction to record whole as a dead letter and skip (skip_transaction). */
  private deadLetter: { commitLsn: Lsn; row: DeadLetterRow } | null = null;
  private ackedLsn: Lsn = ZERO_LSN;
  private current: {
    applier: Applier;
    stream: ReplicationStream;
    streamed: StreamedTransactions | null;
  } | null = null;
  private readonly now: () => number;
  /** Set while paused: everything up to here was handled before the failing transaction. */
  private pausedAfter: Lsn | null = null;
  private lastSessionHandled: Lsn = ZERO_LSN;
  private readonly ha: EdgeHa;
  /** Logs and counts the conflicts the apply recorded, once committed; its position outlives sessions. */
  private readonly conflictTail: ConflictTail;
  /** When this edge last pruned its target's conflict records (outlives sessions). */
  private prunedAt = Number.NEGATIVE_INFINITY;

  constructor(private readonly o: EdgeRunnerOptions) {
    const { edge, config } = o;
    this.source = config.nodes.find((n) => n.name === edge.source) as NodeConfig;
    this.target = config.nodes.find((n) => n.name === edge.target) as NodeConfig;
    this.log = o.logger.child({ component: 'edge', edge: edge.id, node: edge.target });
    this.conflictTail = new ConflictTail(edge.id, this.log, (c) => {
      this.st.conflicts++;
      o.metrics.conflict(edge.id, c.kind, c.resolution);
    });
    this.now = o.now ?? Date.now;
    this.ha = new EdgeHa(edge, this.source, this.target, config);
    this.st = {
      edge: edge.id,
      source: edge.source,
      target: edge.target,
      state: 'starting',
      lastError: null,
      lastAppliedLsn: null,
      ackedLsn: null,
      sourceWalEnd: null,
      lagBytes: null,
      lagSeconds: null,
      originFilter: null,
      appliedTransactions: 0,
      appliedRows: 0,
      skippedTransactions: 0,
      echoSkippedTransactions: 0,
      conflicts: 0,
      restarts: 0,
      streamedInProgress: null,
      spooledBytes: null,
      sourceServer: null,
      targetServer: null,
    };
  }

  status(): EdgeStatus {
    const cur = this.current;
    if (cur) {
      this.st.streamedInProgress = cur.streamed?.inProgress() ?? null;
      this.st.spooledBytes = cur.streamed?.spooledBytes() ?? null;
      const walEnd = cur.stream.serverWalEnd;
      const handled = cur.applier.lastHandledEndLsn;
      this.st.lastAppliedLsn = formatLsn(cur.applier.lastAppliedEndLsn);
      this.st.sourceWalEnd = walEnd === null ? null : formatLsn(walEnd);
      const behind = walEnd !== null && walEnd > handled && (cur.applier.inFlight() || walEnd - handled > 0n);
      const caughtUp = !cur.applier.inFlight() && cur.stream.safeKeepalive() !== null;
      this.st.lagBytes =
        walEnd === null ? null : caughtUp ? 0 : Number(walEnd > handled ? walEnd - handled : 0n);
      const ts = cur.applier.lastCommitTs;
      this.st.lagSeconds =
        caughtUp || !behind
          ? 0
          : ts === null
            ? null
            : Math.max(0, (this.now() - pgMicrosToUnixMs(ts)) / 1000);
    }
    this.st.ackedLsn = this.ackedLsn === ZERO_LSN ? null : formatLsn(this.ackedLsn);
    return { ...this.st, lastError: this.st.lastError ? { ...this.st.lastError } : null };
  }

  /** A transaction past the one that paused the edge was handled: the edge streams again. */
  private progressed(endLsn: Lsn): void {
    if (this.pausedAfter !== null && endLsn > this.pausedAfter) {
      this.pausedAfter = null;
      this.st.lastError = null;
      this.setState('streaming');
      this.log.info('edge resumed');
    }
  }

  private setState(state: EdgeState): void {
    this.st.state = state;
    this.o.metrics.state(this.o.edge.id, state);
  }

  async run(): Promise<void> {
    const { signal, config } = this.o;
    let attempt = 0;
    while (!signal.aborted) {
      let outcome: ApplierFailure | { kind: 'stopped' } | { kind: 'error'; error: Error };
      try {
        outcome = await this.session();
      } catch (err) {
        outcome = { kind: 'error', error: err as Error };
      }
      if (signal.aborted || outcome.kind === 'stopped') break;
      this.st.restarts++;
      if (outcome.kind === 'dead_letter') {
        // Read the refused transaction again from its start, recording every change.
        this.deadLetter = { commitLsn: outcome.commitLsn, row: outcome.row };
        attempt = 0;
        continue;
      }
      if (outcome.kind === 'replay') {
        // A transaction failed on the fast path: replay it change by change at once.
        if (this.careful === outcome.commitLsn) {
          // Already replayed carefully and failed again: treat as transient.
          attempt++;
        } else {
          attempt = 0;
        }
        this.careful = outcome.commitLsn;
        this.log.debug(
          { commitLsn: formatLsn(outcome.commitLsn), err: outcome.error.message },
          'replaying transaction on the careful path',
        );
        if (attempt > 0)
          await pause(this.ha.retryDelay(backoffDelay(attempt, { ...config.reconnect })), signal);
        continue;
      }
      const e = toPgfleetError(outcome.error, { node: this.target.name });
      this.st.lastError = { code: e.code, message: e.message, details: e.details };
      if (outcome.kind === 'pause') {
        const again = this.st.state === 'paused' && this.pausedAfter !== null;
        this.pausedAfter = this.lastSessionHandled;
        this.setState('paused');
        if (again) this.log.debug({ err: { code: e.code, message: e.message } }, 'edge still paused');
        else this.log.error({ err: { code: e.code, message: e.message } }, 'edge paused');
        await pause(Math.min(config.reconnect.maxDelayMs, 2000), signal);
        continue;
      }
      attempt++;
      this.setState('reconnecting');
      const delay = this.ha.retryDelay(backoffDelay(attempt, { ...config.reconnect }));
      this.log.warn(
        { err: { code: e.code, message: e.message }, attempt, delayMs: delay },
        'edge lost; reconnecting',
      );
      await pause(delay, signal);
    }
    this.setState('stopped');
  }

  /** One streaming session; resolves with why it ended. */
  private async session(): Promise<ApplierFailure | { kind: 'stopped' }> {
    const { edge, config, signal } = this.o;
    const appName = `pgfleet-mm:${edge.id}`;
    let control: pg.Client | null = null;
    let db: pg.Client | null = null;
    let stream: ReplicationStream | null = null;
    let streamed: StreamedTransactions | null = null;
    let applier: Applier | null = null;
    let timer: NodeJS.Timeout | null = null;
    let sourceClient: pg.Client | null = null;
    try {
      // Where both ends' primaries are now: every session below goes to these servers.
      const ends = await this.ha.resolve(signal);
      this.st.sourceServer = ends.source.server;
      this.st.targetServer = ends.target.server;
      const src = await openSource(ends.source, edge, appName, signal);
      sourceClient = src.client;
      const wait = this.ha.sourceSlotWait(src.facts.slotExists, src.facts.resyncState, ends.source.server);
      if (wait) throw wait;
      if (!src.facts.slotExists)
        throw new ApplyPausedError(
          `slot ${edge.slot} does not exist on ${edge.source}: run pgfleet-mm init`,
          {
            edge: edge.id,
          },
        );
      // Before 17 nothing on the server keeps a peer from receiving what the source's
      // standby lacks: hold each commit until the standby has it (ha/standby-gate.ts).
      const sourceStandbys = standbySlotsOf(this.source, ends.source);
      const gate =
        src.facts.version < 170000 && sourceStandbys.length > 0
          ? new StandbyFlushGate(sourceClient, sourceStandbys)
          : null;
      if (!gate) {
        await sourceClient.end().catch(() => {});
        sourceClient = null;
      }
      // With a standby on the target, acknowledge only what that standby holds (ha/ack-bound.ts).
      const targetStandbys = standbySlotsOf(this.target, ends.target);
      const ackBound = targetStandbys.length > 0 ? new StandbyAckBound() : null;

      control = await openControl(ends.target.conninfo, appName, signal);
      control.on('error', () => {});
      await assertWritable(control, edge.target, ends.target);
      // Exclusive: a second replicator for this edge stops here with a clear error.
      await claimEdge(control, edge, this.o.holder ?? 'pgfleet-mm');
      const facts = await readTargetFacts(control, edge);
      await this.conflictTail.start(control);
      const apply = await openApplySession(ends.target.conninfo, edge, config, appName, signal, {
        logger: this.log,
      });
      db = apply.db;
      const { startProgress } = apply;

      const ctl = control;
      let view = originView(facts.origins, config, edge, facts.floor, 0);
      let originsReadAt = this.now();
      const seen = new SeenTracker(
        facts.floor,
        new Set(config.nodes.map((n) => n.name)),
        facts.persistedSeen,
      );
      let endStream!: (err: Error | null) => void;
      const streamEnded = new Promise<Error | null>((resolve) => {
        endStream = resolve;
      });
      // A target (or gated source) that dies while nothing is applied would otherwise go
      // unnoticed until the next transaction: end the session at once and find the primary.
      const lost = (what: string, node: string) => () =>
        endStream(new NodeUnreachableError(`${what} connection to ${node} closed`, { edge: edge.id, node }));
      control.once('end', lost('control', edge.target));
      db.once('end', lost('apply', edge.target));
      sourceClient?.once('end', lost('standby gate', edge.source));
      let replyNow: (() => void) | null = null;
      // The applier (backlog), the standby gate and a streamed transaction being handed on
      // each may hold the stream; it flows when none does.
      const holds = new Set<'applier' | 'gate' | 'streamed'>();
      const hold = (why: 'applier' | 'gate' | 'streamed', on: boolean) => {
        if (on) holds.add(why);
        else holds.delete(why);
        if (holds.size > 0) stream?.pause();
        else stream?.resume();
        if (!on && why !== 'streamed' && !downstreamHeld()) streamed?.resume();
      };
      const downstreamHeld = () => holds.has('applier') || holds.has('gate');
      const gated = gate
        ? new GatedStream({
            gate,
            deliver: (msg) => applier?.receive(msg),
            hold: (on) => hold('gate', on),
            // The commit is not handed over: the session ends and resumes from progress.
            fail: (err) => endStream(err),
            signal,
          })
        : null;
      const deliver = gated ? (msg: Buffer) => gated.receive(msg) : (msg: Buffer) => applier?.receive(msg);
      const spool = config.apply.streaming
        ? new StreamedTransactions({
            dir: config.apply.spoolDirectory,
            deliver,
            downstreamHeld,
            hold: (on) => hold('streamed', on),
            // A stream it cannot follow, or a spool it cannot write: start over from progress.
            fail: (err) => endStream(err),
          })
        : null;
      streamed = spool;
      const s = new ReplicationStream({
        clientConfig: replicationClientConfig(ends.source.conninfo, `${appName}:stream`),
        slot: edge.slot,
        publication: edge.publication,
        // Echoes are received on every version and dropped here: their Begin and Origin
        // messages tell what the source had applied from other nodes when it wrote each of
        // its own transactions (apply/seen.ts), which decides what counts as a conflict.
        originNone: false,
        streaming: spool !== null,
        startLsn: startProgress,
        onMessage: spool ? (msg) => spool.receive(msg) : deliver,
        onReplyRequested: () => replyNow?.(),
        onEnd: (err) => endStream(err),
      });
      stream = s;
      const a = new Applier({
        edge,
        db,
        port: this.port(ctl, (on) => hold('applier', on)),
        sourceRank: this.source.rank,
        policyFor: (schema, table) => policyFor(config, schema, table),
        deadLetter: config.deadLetter,
        batchRows: config.apply.batchRows,
        maxInFlightTransactions: config.apply.maxInFlightTransactions,
        startProgress,
        carefulCommitLsn: this.careful,
        pausedOnCareful: this.pausedAfter !== null,
        deadLetterTx: this.deadLetter,
        seen,
        origins: () => view,
        ...(this.o.testHooks?.commitTs
          ? { commitTsOf: (xid: number, ts: bigint) => this.o.testHooks?.commitTs?.(edge.id, xid, ts) ?? ts }
          : {}),
        logger: this.log,
      });
      applier = a;
      this.st.originFilter = 'client';
      this.log.info(
        { originFilter: this.st.originFilter, startLsn: formatLsn(startProgress) },
        'streaming; echoes dropped here, after noting what the source had applied',
      );
      this.current = { applier: a, stream: s, streamed: spool };
      // With a standby on the target, what its primary holds may not be acknowledged yet.
      if (!ackBound && startProgress > this.ackedLsn) this.ackedLsn = startProgress;
      s.start();
      // A paused edge retries its failing transaction; it only counts as streaming again
      // once that transaction went through (see progressed()).
      if (this.pausedAfter === null) {
        this.setState('streaming');
        this.st.lastError = null;
      }

      let busy = false;
      const tick = async (requestReply: boolean) => {
        if (busy) return;
        busy = true;
        try {
          const { rows } = await ctl.query(
            `SELECT ${committedProgressSql('$1', true)}::text AS durable, ${committedProgressSql('$1', false)}::text AS applied`,
            [edge.origin],
          );
          a.committedThrough(parseLsn(rows[0].applied));
          let durable = parseLsn(rows[0].durable);
          if (ackBound) {
            const r = await readOriginAndStandby(ctl, edge.origin, targetStandbys);
            if (r.standbys > 0) {
              const safe = ackBound.update(r.sample, r.flush) ?? ZERO_LSN;
              if (safe < durable) durable = safe;
            }
          }
          const ack = ackPosition({
            durable,
            lastApplied: a.lastAppliedEndLsn,
            lastHandled: a.lastHandledEndLsn,
            inFlight: a.inFlight() || (gated?.pending() ?? 0) > 0 || (spool?.replaying() ?? false),
            keepalive: s.safeKeepalive(),
            previous: this.ackedLsn,
          });
          if (s.sendStatus(ack, requestReply)) this.ackedLsn = ack;
          const st = this.status();
          this.o.metrics.lag(edge.id, st.lagBytes, st.lagSeconds);
          // After the acknowledgement: a burst of conflicts to log never holds it back.
          await this.conflictTail.read(ctl);
          // Sessions live long: an origin created meanwhile (`dead-letters --replay` makes
          // the source's replay origin) must become known to the apply.
          if (this.now() - originsReadAt > ORIGIN_REFRESH_MS) {
            originsReadAt = this.now();
            const fresh = await readOrigins(ctl);
            if (!sameOrigins(fresh, view.byId))
              view = originView(fresh, config, edge, facts.floor, view.epoch + 1);
          }
          if (this.now() - this.prunedAt >= config.conflictLog.pruneIntervalMs) {
            this.prunedAt = this.now();
            const pruned = await pruneConflicts(ctl, config.conflictLog);
            if (pruned > 0) {
              this.o.metrics.conflictRecordsPruned(edge.target, pruned);
              this.log.debug({ pruned }, 'pruned conflict records past retention');
            }
          }
        } catch (err) {
          this.log.debug({ err: (err as Error).message }, 'status update failed');
        } finally {
          busy = false;
        }
      };
      replyNow = () => void tick(false);
      timer = setInterval(() => void tick(true), config.statusIntervalMs);

      const aborted = new Promise<'aborted'>((resolve) => {
        if (signal.aborted) resolve('aborted');
        signal.addEventListener('abort', () => resolve('aborted'), { once: true });
      });
      const first = await Promise.race([streamEnded, a.failed, aborted]);
      if (first === 'aborted') {
        await s.stop();
        await Promise.race([a.drain(), pause(10_000)]);
        await tick(false).catch(() => {});
        return { kind: 'stopped' };
      }
      if (first === null || first instanceof Error) {
        return { kind: 'retry', error: first ?? new Error(`stream from ${edge.source} ended`) };
      }
      return first;
    } finally {
      if (timer) clearInterval(timer);
      if (applier) this.lastSessionHandled = applier.lastHandledEndLsn;
      this.current = null;
      await stream?.stop();
      streamed?.close();
      if (applier) await Promise.race([applier.drain(), pause(5000)]);
      await db?.end().catch(() => {});
      await control?.end().catch(() => {});
      await sourceClient?.end().catch(() => {});
    }
  }

  /** The applier's one seam to this edge: answers on the control connection, reports into status and metrics. */
  private port(ctl: pg.Client, hold: (on: boolean) => void): ApplyPort {
    const { edge, config } = this.o;
    return {
      loadTargetTable: (schema, table) => loadTargetTable(ctl, schema, table),
      skipRequested: async (commitLsn) => {
        const { rows } = await ctl.query(
          'SELECT 1 FROM pgfleet.skip_requests WHERE edge = $1 AND commit_lsn = $2::pg_lsn',
          [edge.id, formatLsn(commitLsn)],
        );
        return rows.length > 0;
      },
      recordOutside: async (r) => {
        if (r.type === 'error_conflict') await ctl.query(ERROR_CONFLICT_INSERT_SQL, r.values);
        else await recordPausedDeadLetter(ctl, edge, r.row, config);
      },
      report: (e) => this.onApplyEvent(e),
      pause: () => hold(true),
      resume: () => hold(false),
    };
  }

  private onApplyEvent(e: ApplyEvent): void {
    const m = this.o.metrics;
    const id = this.o.edge.id;
    if (e.type === 'applied') {
      this.progressed(e.endLsn);
      this.st.appliedTransactions += e.transactions;
      this.st.appliedRows += e.rows;
      m.applied(id, e.transactions, e.rows);
      if (this.careful !== null && e.endLsn > this.careful) this.careful = null;
    } else if (e.type === 'skipped') {
      this.progressed(e.endLsn);
      if (this.deadLetter !== null && e.endLsn > this.deadLetter.commitLsn) this.deadLetter = null;
      this.st.skippedTransactions++;
      if (e.reason === 'echo') this.st.echoSkippedTransactions++;
      m.skipped(id, e.reason);
    }
  }
}

/** How often a long session reads the target's replication origins again. */
const ORIGIN_REFRESH_MS = 10_000;

function sameOrigins(
  a: ReadonlyMap<number, { name: string }>,
  b: ReadonlyMap<number, { name: string }>,
): boolean {
  for (const [id, o] of a) if (b.get(id)?.name !== o.name) return false;
  for (const id of b.keys()) if (id !== 0 && !a.has(id)) return false;
  return true;
}

export function policyFor(config: ResolvedConfig, schema: string, table: string) {
  const exact = config.tables.find((t) => t.schema === schema && t.table === table);
  if (exact) return exact.conflict;
  const wild = config.tables.find((t) => t.schema === schema && t.table === '*');
  return wild?.conflict ?? config.conflict;
}

async function recordPausedDeadLetter(
  control: pg.Client,
  edge: Edge,
  row: DeadLetterRow,
  config: ResolvedConfig,
): Promise<void> {
  const { rowCount } = await control.query(
    `UPDATE pgfleet.dead_letters SET attempts = attempts + 1, recorded_at = clock_timestamp(), error = $3
      WHERE edge = $1 AND commit_lsn = $2::pg_lsn AND action = 'pause' AND resolved IS NULL`,
    [edge.id, formatLsn(row.commitLsn), row.error],
  );
  if (rowCount === 0)
    await control.query(DEAD_LETTER_INSERT_SQL, deadLetterValues(edge, row, config.deadLetter));
}
