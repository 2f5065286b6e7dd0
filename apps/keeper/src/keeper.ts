import { ConfigError } from '@pgfleet/connection';
import type { RoleInfo } from '@pgfleet/roles';
import pino, { type Logger } from 'pino';
import { type Clock, systemClock } from './clock.js';
import { clusterView, historyView } from './cluster-view.js';
import type { KeeperConfig } from './config.js';
import { errorText, type LoopContext } from './context.js';
import { type ClusterSnapshot, createEtcdDcs, type Dcs } from './dcs/index.js';
import { dcsFailover, dcsSwitchover } from './dcs-handover.js';
import { dcsCall, memberState, noteSnapshot } from './dcs-node.js';
import { dcsPrimaryIteration } from './dcs-primary-loop.js';
import { dcsStandbyIteration } from './dcs-standby-loop.js';
import { etcdSecurity } from './etcd-security.js';
import { manualFailover } from './failover.js';
import { answerFailsafe } from './failsafe.js';
import { HookRunner } from './hooks.js';
import { type HttpApi, type HttpServerHandle, type PostResult, startHttpServer } from './http-server.js';
import { type LocalFacts, readLocal } from './local-facts.js';
import { LocalSession } from './local-session.js';
import { KeeperMetrics } from './metrics.js';
import { handleNotice } from './peer-notice.js';
import { INITIAL_STANDBY_WATCH } from './primary-decision.js';
import { PrimaryGuard } from './primary-guard.js';
import { announceDown, primaryIteration } from './primary-loop.js';
import { INITIAL_WATCH } from './standby-decision.js';
import { standbyIteration } from './standby-loop.js';
import { fenceAfterRead, initialState, type KeeperState, type KeeperStatus } from './state.js';
import { buildStatus } from './status-view.js';
import { switchover } from './switchover.js';
import { keeperTiming } from './timing.js';
import { startWitness } from './witness-service.js';

/**
 * The keeper daemon: one loop that re-learns the local server's role every iteration and runs
 * standby mode or primary mode accordingly (so a promotion switches mode without a restart),
 * plus the HTTP API. Runs in-process (tests, the demo) or behind the CLI.
 */

export interface KeeperOptions {
  logger?: Logger;
  signal?: AbortSignal;
  clock?: Clock;
}

export interface KeeperHandle {
  /** Base URL of the HTTP API, e.g. http://127.0.0.1:8008. */
  readonly url: string;
  status(): KeeperStatus;
  /** Stops the loop and the HTTP server; waits for running hooks. Idempotent. */
  stop(): Promise<void>;
  /** Resolves once the keeper has stopped (by stop() or the signal). */
  readonly done: Promise<void>;
}

/** Re-probe period while the peer says it restored sync and our probes do not see it yet. */
const SYNC_RECHECK_MS = 100;
/** Re-check period of a standby told its primary is gone while a gate still blocks it. */
const FAST_PATH_RECHECK_MS = 50;

/**
 * Causes for which the keeper beside a dead primary tells the standby's keeper at once: the
 * postmaster is gone. Not 'shutting_down' (a clean stop is an operator's act: pause the
 * keepers for planned restarts), not 'crash_recovery' (PostgreSQL restarts itself; if that
 * takes longer than fenceAfter the server watch stops it and then tells the peer).
 */
const FAST_PATH_CAUSES = new Set(['refused', 'reset']);

export async function startKeeper(config: KeeperConfig, opts: KeeperOptions = {}): Promise<KeeperHandle> {
  const base = opts.logger ?? pino({ level: config.logLevel });
  // Bound once here; each component adds only `component` (pino repeats a key bound twice).
  const logger = base.child({ node: config.node.name });
  if (config.mode === 'witness') return startWitness(config, { ...opts, logger });
  return startNodeKeeper(config, { ...opts, logger });
}

async function startNodeKeeper(
  config: KeeperConfig,
  opts: KeeperOptions & { logger: Logger },
): Promise<KeeperHandle> {
  const c = config;
  const clock = opts.clock ?? systemClock;
  const logger = opts.logger.child({ component: 'keeper' });
  const stopCtl = new AbortController();
  const signal = opts.signal ? AbortSignal.any([opts.signal, stopCtl.signal]) : stopCtl.signal;
  const metrics = new KeeperMetrics(c.node.name);
  const hooks = new HookRunner(c.hooks, opts.logger.child({ component: 'hooks' }));
  const state: KeeperState = initialState(clock.now());
  let wakeCtl = new AbortController();
  let wakeRequested = false;
  let iterationStartedAt: number | null = null;

  const ctx: LoopContext = {
    config: c,
    logger,
    clock,
    signal,
    metrics,
    hooks,
    state,
    record(kind, reason, fields = {}, key = reason) {
      const last = state.decision;
      state.decision = { kind, reason, key, at: clock.now() };
      if (last && last.kind === kind && last.key === key) return;
      const level = ['promote', 'degrade', 'fence', 'stop', 'blocked'].includes(kind) ? 'warn' : 'info';
      logger[level]({ decision: kind, role: state.role, ...fields }, reason);
    },
    hook(event, reason, extra = {}) {
      void hooks.run(event, {
        node: c.node.name,
        role: state.role,
        ...(extra.oldRole !== undefined ? { oldRole: extra.oldRole } : {}),
        timeline: state.timeline,
        reason,
      });
    },
    wake() {
      wakeRequested = true;
      wakeCtl.abort();
    },
  };

  if (c.restartBudgetMs !== undefined)
    logger.warn({ restartBudgetMs: c.restartBudgetMs }, 'restartBudget is not implemented yet: ignored');
  const timing = keeperTiming(c);
  const etcd = c.dcs?.etcd;
  const dcs: Dcs | undefined = etcd
    ? createEtcdDcs({
        endpoints: etcd.endpoints,
        prefix: etcd.prefix,
        cluster: c.cluster.name,
        memberName: c.node.name,
        ttlSeconds: etcd.ttlSeconds,
        requestTimeoutMs: etcd.requestTimeoutMs,
        security: etcdSecurity(etcd),
        logger: opts.logger.child({ component: 'dcs' }),
        clock,
      })
    : undefined;
  if (dcs) ctx.dcs = dcs;
  if (!c.witness && !dcs)
    logger.warn(
      { twoNodeMode: true },
      'no witness configured: 2-node mode. If the network between the two nodes breaks while both ' +
        `servers live, the standby promotes after failures × interval (and ${timing.promoteAfterMs} ms ` +
        'without an answer) while the old primary keeps its clients: two writers, diverging data. ' +
        'Likewise a standby keeper whose peer.conninfo reaches nothing promotes once startupGrace ' +
        'runs out unless its walreceiver streams. Add a witness (witness.url), or make ' +
        'hooks.onPromote fence the old primary (STONITH)',
    );

  /** `readEpoch`: state.fenceEpoch when the read of `local` began. */
  function learnRole(local: RoleInfo, readEpoch: number): void {
    const now = clock.now();
    const old = state.role;
    state.roleReason = local.reason;
    if (local.role === 'down' && local.downCause) state.downCause = local.downCause;
    else delete state.downCause;
    guard.noteLocal(local);
    if (local.role !== 'down') {
      if (local.timeline !== undefined) state.timeline = local.timeline;
      state.lsn = local.lsn ?? null;
      // A fence or unfence this keeper carried out while the read ran is newer than the read.
      state.fenced = fenceAfterRead(state, readEpoch, local.fenced ?? false);
      metrics.fenced.set(state.fenced ? 1 : 0);
      state.notifiedPeerDown = false;
    }
    if (old === local.role) return;
    state.role = local.role;
    state.roleSince = now;
    metrics.setRole(local.role);
    const reason = `role ${old} → ${local.role}: ${local.reason}`;
    logger.info(
      { event: 'role_change', oldRole: old, newRole: local.role, timeline: state.timeline },
      reason,
    );
    if (local.role === 'down') return;
    const lastServing = state.lastServingRole;
    state.lastServingRole = local.role;
    if (lastServing === local.role) return; // back from a blip: same mode, keep its counters
    // A new mode starts from a clean slate: old counters belong to the old mode.
    state.primaryWatch = INITIAL_WATCH;
    state.standbyWatch = INITIAL_STANDBY_WATCH;
    state.holdFence = false;
    // onRoleChange is for primary <-> standby (a promotion we did not run, a rejoin); a
    // server going down and up again in the same role is logged, not hooked.
    if (lastServing !== null) ctx.hook('role_change', reason, { oldRole: lastServing });
  }

  async function downIteration(facts: LocalFacts): Promise<void> {
    const local = facts.info;
    ctx.record('wait', `local server down: ${local.reason}`, { downCause: local.downCause });
    if (dcs) {
      state.dcs.fenceBy = null;
      // The member key says down, and the read brings the cluster's pause state.
      const [, snap] = await Promise.all([
        dcsCall(ctx, 'publish member key', () => dcs.touchMember(memberState(ctx, facts), { signal })),
        dcsCall(ctx, 'read cluster', () => dcs.readCluster({ signal })),
      ]);
      if (snap) noteSnapshot(ctx, snap, false);
    }
    state.replicaStreaming = false;
    // Fast path: our primary's postmaster is gone while this host lives. The standby's
    // keeper confirms with one probe and promotes without waiting for failures × interval.
    // On etcd the leader key lives with this keeper's session, so a server down for any other
    // reason (stopped, in crash recovery) gives it up after failures × interval too: it takes
    // no writes, and a standby may lead. A postmaster that hangs (timeout) is the guard's: it
    // stops the server, then releases.
    const longDown =
      dcs !== undefined &&
      local.downCause !== 'timeout' &&
      clock.now() - state.roleSince >= c.failures * c.intervalMs;
    const dead = (local.downCause !== undefined && FAST_PATH_CAUSES.has(local.downCause)) || longDown;
    if (state.lastServingRole === 'primary' && dead && !state.notifiedPeerDown && !state.paused) {
      state.notifiedPeerDown = true;
      logger.warn(
        { event: 'peer_notified' },
        dcs
          ? `local primary is down (${local.downCause}): releasing the leader key`
          : `local primary is down (${local.downCause}): telling the witness and the standby's keeper`,
      );
      void announceDown(ctx, local.reason);
    }
  }

  async function iteration(): Promise<void> {
    const readEpoch = state.fenceEpoch;
    const local = await readLocal(ctx, session);
    if (signal.aborted) return; // a session cut by shutdown says nothing about the server
    learnRole(local.info, readEpoch);
    if (local.info.role !== 'down' && !guard.knowsDataDirectory) await learnDataDirectory();
    if (dcs) {
      if (local.info.role === 'standby') await dcsStandbyIteration(ctx, local);
      else if (local.info.role === 'primary') await dcsPrimaryIteration(ctx, local);
      else await downIteration(local);
      return;
    }
    if (local.info.role === 'standby') await standbyIteration(ctx, local);
    else if (local.info.role === 'primary') await primaryIteration(ctx, local);
    else await downIteration(local);
  }

  /** The loop period: one interval, or a quick re-probe while a sync restore is unconfirmed. */
  function period(): number {
    if (state.role === 'standby' && state.syncRecheckUntil !== null)
      return Math.min(c.intervalMs, SYNC_RECHECK_MS);
    // Fast path under way and still blocked (the witness may not have heard from the dead
    // primary's keeper yet): look again soon rather than an interval later.
    if (
      state.role === 'standby' &&
      state.peerReportedDownAt !== null &&
      clock.now() - state.peerReportedDownAt < c.failures * c.intervalMs &&
      state.decision?.kind === 'blocked'
    )
      return Math.min(c.intervalMs, FAST_PATH_RECHECK_MS);
    return c.intervalMs;
  }

  // Also the fast path's tripwire: its socket closes the moment the local postmaster dies.
  const session = new LocalSession(
    c.node.conninfo,
    c.node.name,
    c.connectTimeoutMs,
    () => ctx.wake(),
    logger,
  );
  const guard = new PrimaryGuard(ctx, session, timing);
  ctx.guard = guard;
  ctx.session = session;

  /** node.pgdata when not configured: the server's data_directory, if it is on this host. */
  async function learnDataDirectory(): Promise<void> {
    try {
      const dir = await session.run('data directory', async (q) => {
        const { rows } = await q.query("SELECT current_setting('data_directory') AS dir");
        return String(rows[0]?.dir ?? '');
      });
      if (dir) guard.learnDataDirectory(dir);
      if (!guard.knowsDataDirectory && !warnedNoDataDir) {
        warnedNoDataDir = true;
        logger.warn(
          { event: 'no_pgdata', dataDirectory: dir },
          `the server's data directory ${dir} is not a running server on this host (a container?): ` +
            'the keeper cannot stop a server whose postmaster hangs; set node.pgdata or run the keeper beside the server',
        );
      }
    } catch (err) {
      logger.debug({ err: errorText(err) }, 'could not read data_directory');
    }
  }
  let warnedNoDataDir = false;

  /**
   * On etcd: wakes the loop the moment the leader key changes (released by a dying primary's
   * keeper, or expired), instead of at the next tick.
   */
  async function watchLeader(d: Dcs): Promise<void> {
    let seen: string | null = null;
    while (!signal.aborted) {
      const rev = state.dcs.snapshot?.revision ?? null;
      if (rev === null || rev === seen) {
        await clock.sleep(Math.min(c.intervalMs, 50), signal);
        continue;
      }
      const r = await d
        .waitForLeaderChange({ afterRevision: rev, timeoutMs: 10_000, signal })
        .catch(() => 'timeout' as const);
      if (r === 'changed') {
        seen = rev;
        if (!signal.aborted) ctx.wake();
      }
    }
  }

  async function loop(): Promise<void> {
    while (!signal.aborted) {
      const started = clock.now();
      iterationStartedAt = started;
      try {
        await iteration();
        state.lastError = null;
      } catch (err) {
        if (signal.aborted) break;
        // Nothing that goes wrong in one iteration may stop the keeper.
        metrics.iterationErrors.inc();
        state.lastError = errorText(err);
        logger.error({ err: errorText(err) }, `iteration failed: ${errorText(err)}`);
      }
      iterationStartedAt = null;
      state.lastIterationAt = clock.now();
      if (signal.aborted) break;
      if (wakeRequested) {
        wakeRequested = false;
        wakeCtl = new AbortController();
        continue;
      }
      const wait = started + period() - clock.now();
      if (wait > 0) await clock.sleep(wait, AbortSignal.any([signal, wakeCtl.signal]));
      if (wakeCtl.signal.aborted) {
        wakeRequested = false;
        wakeCtl = new AbortController();
      }
    }
  }

  function status(): KeeperStatus {
    const now = clock.now();
    return buildStatus(c, state, now, alive(), guard.writable(now));
  }

  function alive(): boolean {
    const now = clock.now();
    if (iterationStartedAt !== null && now - iterationStartedAt < 70_000) return true;
    return now - (state.lastIterationAt ?? state.startedAt) < 3 * c.intervalMs + 10_000;
  }

  const post: Record<string, (body: unknown) => Promise<PostResult>> = {
    '/pause': async () => {
      // On etcd the whole cluster pauses (the config key every keeper reads), like Patroni.
      if (dcs) return setClusterPause(true);
      state.paused = true;
      logger.warn({ event: 'paused' }, 'keeper paused by operator: no automatic action until resume');
      return { status: 200, body: { paused: true } };
    },
    '/resume': async () => {
      if (dcs) return setClusterPause(false);
      state.paused = false;
      logger.warn({ event: 'resumed' }, 'keeper resumed by operator');
      ctx.wake();
      return { status: 200, body: { paused: false } };
    },
    '/peer/notify': async (body) => handleNotice(ctx, body),
    '/failsafe': async (body) => answerFailsafe(ctx, body),
    '/switchover': async (body) => (dcs ? dcsSwitchover(ctx, body) : switchover(ctx)),
    '/failover': async (body) => (dcs ? dcsFailover(ctx, body) : manualFailover(ctx, body)),
  };

  /** On etcd: a fresh read for /cluster and /history, the last one when etcd does not answer. */
  async function readForApi(): Promise<{ snap: ClusterSnapshot; fresh: boolean } | null> {
    if (!dcs) return null;
    const snap = await dcs.readCluster({ signal }).catch(() => null);
    if (snap) return { snap, fresh: true };
    return state.dcs.snapshot ? { snap: state.dcs.snapshot, fresh: false } : null;
  }
  const unavailable = () => ({
    status: 503,
    body: { error: `etcd does not answer: ${state.dcs.lastError ?? 'no read yet'}` },
  });
  const get: Record<string, () => Promise<PostResult>> = dcs
    ? {
        '/cluster': async () => {
          const r = await readForApi();
          if (!r) return unavailable();
          return {
            status: 200,
            body: { ...clusterView(c.cluster.name, r.snap, c.cluster.members), fresh: r.fresh },
          };
        },
        '/history': async () => {
          const r = await readForApi();
          if (!r) return unavailable();
          return { status: 200, body: historyView(r.snap.history) };
        },
      }
    : {};

  async function setClusterPause(paused: boolean): Promise<PostResult> {
    try {
      await dcs?.updateConfig((cur) => ({ ...cur, paused }), { signal });
    } catch (err) {
      return { status: 503, body: { error: `etcd: ${errorText(err)}` } };
    }
    ctx.wake();
    return { status: 200, body: { paused, cluster: c.cluster.name } };
  }

  const api: HttpApi = {
    status,
    alive,
    get,
    metrics: async () => ({
      contentType: metrics.registry.contentType,
      body: await metrics.registry.metrics(),
    }),
    ...(c.http.token ? { token: c.http.token } : {}),
    post,
  };
  let http: HttpServerHandle;
  try {
    http = await startHttpServer(api, {
      host: c.http.host,
      port: c.http.port,
      logger: opts.logger.child({ component: 'http' }),
    });
  } catch (err) {
    session.close();
    throw httpListenError(c, err);
  }
  guard.start();
  logger.info(
    {
      event: 'started',
      url: http.url,
      intervalMs: c.intervalMs,
      failures: c.failures,
      connectTimeoutMs: c.connectTimeoutMs,
      sync: c.syncStandbyNames || '(async pair)',
      peer: c.peer.name,
      witness: c.witness?.url ?? null,
    },
    `keeper ${c.node.name} started, HTTP API on ${http.url}`,
  );

  const running = loop();
  const watching = dcs ? watchLeader(dcs) : Promise.resolve();
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      // Yield first: aborting below re-enters stop() through the signal listener.
      await null;
      stopCtl.abort();
      guard.stop();
      await running;
      await watching;
      // The lease is revoked (member key and a leader key gone now) only where no writes can
      // follow; a primary's keeper leaves its lease to run out: its server still runs.
      await dcs?.close({ revoke: state.role !== 'primary' || state.fenced }).catch(() => {});
      session.close();
      await http.close();
      await hooks.drain();
      logger.info({ event: 'stopped' }, `keeper ${c.node.name} stopped`);
    })();
    return stopping;
  };
  const done = new Promise<void>((resolve) => {
    signal.addEventListener('abort', () => void stop().then(resolve), { once: true });
  });
  return { url: http.url, status, stop, done };
}

/** A listen failure names the key to change: `http.listen 127.0.0.1:8008: address already in use`. */
export function httpListenError(c: Pick<KeeperConfig, 'http'>, err: unknown): Error {
  const code = (err as NodeJS.ErrnoException)?.code;
  const where = `${c.http.host.includes(':') ? `[${c.http.host}]` : c.http.host}:${c.http.port}`;
  const why =
    code === 'EADDRINUSE'
      ? 'address already in use (another keeper, or another program, listens there)'
      : code === 'EADDRNOTAVAIL'
        ? 'no such address on this host'
        : code === 'EACCES'
          ? 'permission denied (ports below 1024 need privileges)'
          : errorText(err);
  return new ConfigError(`http.listen ${where}: ${why}`, { key: 'http.listen', errno: code }, { cause: err });
}
