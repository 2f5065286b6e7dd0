import { probe } from '@pgfleet/connection';
import type { Logger } from 'pino';
import { type Clock, systemClock } from './clock.js';
import type { KeeperConfig } from './config.js';
import { type HttpApi, type PostResult, startHttpServer } from './http-server.js';
import type { KeeperHandle } from './keeper.js';
import { KeeperMetrics } from './metrics.js';
import type { HeartbeatBody } from './peer-client.js';
import type { KeeperStatus } from './state.js';
import { decideVote, INITIAL_WITNESS_STATE, recordHeartbeat, type WitnessState } from './witness.js';

/**
 * Witness mode: no database, just the HTTP API. Primary keepers heartbeat it; a standby
 * keeper that lost its primary asks it for a vote, and the witness probes that primary itself
 * (fresh connection, hard timeout) before answering. Votes are handled one at a time.
 */
export async function startWitness(
  config: KeeperConfig,
  opts: { logger: Logger; signal?: AbortSignal; clock?: Clock },
): Promise<KeeperHandle> {
  const c = config;
  const clock = opts.clock ?? systemClock;
  const logger = opts.logger.child({ component: 'witness' });
  const metrics = new KeeperMetrics(c.node.name);
  metrics.setRole('witness');
  const members = Object.keys(c.members);
  const startedAt = clock.now();
  let state: WitnessState = INITIAL_WITNESS_STATE;
  let lastDecision: { kind: string; reason: string; at: number } | null = null;
  let serial: Promise<unknown> = Promise.resolve();

  const iso = (ms: number) => new Date(ms).toISOString();

  function status(): KeeperStatus {
    return {
      node: c.node.name,
      mode: 'witness',
      role: 'witness',
      roleSince: iso(startedAt),
      roleReason: 'witness mode',
      timeline: null,
      lsn: null,
      fenced: false,
      fenceReason: null,
      writable: false,
      lease: 'witness mode: no database',
      paused: false,
      healthy: true,
      streaming: false,
      lagBytes: null,
      replayPaused: false,
      peer: { name: '', role: 'unknown', timeline: null, consecutiveFailures: 0, lastProbeLatencyMs: null },
      sync: { configured: '', current: null, degraded: false, observation: 'unknown' },
      decision: lastDecision ? { ...lastDecision, at: iso(lastDecision.at) } : null,
      lastIterationAt: null,
      lastError: null,
      counters: { promotions: 0, degrades: 0, restores: 0, fences: 0, serverStops: 0 },
      witness: {
        grant: state.grant ? { ...state.grant, at: iso(state.grant.at) } : null,
        heartbeats: Object.fromEntries(
          Object.entries(state.heartbeats).map(([k, hb]) => [k, { ...hb, at: iso(hb.at) }]),
        ),
      },
    };
  }

  async function vote(body: unknown): Promise<PostResult> {
    const req = body as { candidate?: unknown; primary?: unknown };
    if (typeof req?.candidate !== 'string' || typeof req.primary !== 'string')
      return { status: 400, body: { error: 'expected { candidate, primary }' } };
    const candidate = req.candidate;
    const primary = req.primary;
    const conninfo = c.members[primary];
    const probed = conninfo
      ? await probe(conninfo, { timeoutMs: c.connectTimeoutMs })
      : { ok: false as const, latencyMs: 0 };
    metrics.probeLatency.set(probed.latencyMs / 1000);
    if (!probed.ok) metrics.probeFailures.inc();
    const d = decideVote(
      state,
      { candidate, primary },
      { now: clock.now(), members, primaryReachable: probed.ok },
    );
    state = d.state;
    lastDecision = {
      kind: d.granted ? 'grant' : 'deny',
      reason: `${candidate}: ${d.reason}`,
      at: clock.now(),
    };
    logger[d.granted ? 'warn' : 'info'](
      { decision: lastDecision.kind, candidate, primary },
      `vote ${d.granted ? 'granted to' : 'denied to'} ${candidate}: ${d.reason}`,
    );
    return { status: 200, body: { granted: d.granted, reason: d.reason } };
  }

  async function heartbeat(body: unknown): Promise<PostResult> {
    const hb = body as Partial<HeartbeatBody>;
    if (typeof hb?.node !== 'string' || !members.includes(hb.node))
      return { status: 403, body: { error: 'unknown member' } };
    state = recordHeartbeat(state, {
      node: hb.node,
      role: hb.role === 'primary' || hb.role === 'standby' ? hb.role : 'down',
      timeline: typeof hb.timeline === 'number' ? hb.timeline : null,
      standbyPromotable: hb.standbyPromotable !== false,
      fenced: hb.fenced === true,
      writable: hb.writable === true,
      leaseMs: typeof hb.leaseMs === 'number' && hb.leaseMs > 0 ? Math.min(hb.leaseMs, 60_000) : 0,
      at: clock.now(),
    });
    return { status: 200, body: { grantedTo: state.grant?.to ?? null } };
  }

  const serialized =
    (fn: (body: unknown) => Promise<PostResult>) =>
    (body: unknown): Promise<PostResult> => {
      const next = serial.then(() => fn(body));
      serial = next.catch(() => {});
      return next;
    };

  const api: HttpApi = {
    status,
    alive: () => true,
    metrics: async () => ({
      contentType: metrics.registry.contentType,
      body: await metrics.registry.metrics(),
    }),
    ...(c.http.token ? { token: c.http.token } : {}),
    post: { '/witness/vote': serialized(vote), '/witness/heartbeat': serialized(heartbeat) },
  };
  const http = await startHttpServer(api, { host: c.http.host, port: c.http.port, logger });
  logger.info({ event: 'started', url: http.url, members }, `witness ${c.node.name} started on ${http.url}`);

  let resolveDone!: () => void;
  const done = new Promise<void>((resolve) => {
    resolveDone = resolve;
  });
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= http.close().then(() => {
      logger.info({ event: 'stopped' }, 'witness stopped');
      resolveDone();
    });
    return stopping;
  };
  if (opts.signal?.aborted) void stop();
  opts.signal?.addEventListener('abort', () => void stop(), { once: true });
  return { url: http.url, status, stop, done };
}
