import {
  commitsNeedStandby,
  detectRoleOn,
  downReasonFromError,
  type NodeRole,
  parseSyncStandbyNames,
  promote,
  readSyncStandbyNames,
  replicationStatus,
  walReceiverStatus,
} from '@pgfleet/roles';
import { errorText, type LoopContext } from './context.js';
import type { LocalFacts } from './local-facts.js';
import { requestVote } from './peer-client.js';
import { INITIAL_STANDBY_WATCH } from './primary-decision.js';
import { withSession } from './session.js';
import {
  decideStandby,
  INITIAL_WATCH,
  observePrimaryProbe,
  type ProbeOutcome,
  type ReceiverFacts,
  type StandbyAction,
  type StandbyFacts,
  type StandbyPolicy,
  type SyncObservation,
  type WitnessVote,
} from './standby-decision.js';
import { keeperTiming } from './timing.js';

/**
 * Standby mode, one iteration: measure local replay, probe the primary with a fresh
 * connection under a hard timeout, ask the pure decision, carry it out (promote, or log why
 * not). Never throws for an unreachable node; unexpected errors are the caller's to log.
 */

export interface PrimaryProbe {
  ok: boolean;
  /** ok, the server answered with an error (alive), or silence. */
  outcome: ProbeOutcome;
  latencyMs: number;
  error?: string;
  role?: NodeRole;
  lsn?: bigint;
  sync?: SyncObservation;
}

export async function probePrimary(ctx: LoopContext): Promise<PrimaryProbe> {
  const { config: c } = ctx;
  const started = ctx.clock.now();
  try {
    return await withSession(
      c.peer.conninfo,
      { timeoutMs: c.connectTimeoutMs, node: c.peer.name, action: 'probe', signal: ctx.signal },
      async (q) => {
        const info = await detectRoleOn(q);
        const res: PrimaryProbe = {
          ok: true,
          outcome: { kind: 'ok' },
          latencyMs: ctx.clock.now() - started,
          role: info.role,
        };
        if (info.role !== 'primary') return res;
        if (info.lsn !== undefined) res.lsn = info.lsn;
        // Best effort: the probe succeeded once the server answered.
        try {
          const names = await readSyncStandbyNames(q);
          if (names.trim() === '') res.sync = 'degraded';
          else {
            const rows = await replicationStatus(q);
            const mine = rows.find((r) => r.applicationName === c.node.name && r.state === 'streaming');
            // The walsender of a primary whose postmaster just died can exit before the
            // backend answering this probe: no row then means "dying", not "async". Where no
            // commit can be acknowledged without us anyway, we hold every acknowledged one.
            res.sync =
              mine && (mine.syncState === 'sync' || mine.syncState === 'quorum')
                ? 'sync'
                : commitsNeedStandby(parseSyncStandbyNames(names), c.node.name, c.peer.name)
                  ? 'required'
                  : 'async';
          }
        } catch (err) {
          ctx.logger.debug({ err: errorText(err) }, 'could not read the primary sync status');
        }
        return res;
      },
    );
  } catch (err) {
    const down = downReasonFromError(err);
    const error = errorText(err);
    return {
      ok: false,
      outcome: down.answered
        ? {
            kind: 'answered',
            message: `${down.serverMessage ?? down.reason}${down.sqlState && down.serverMessage ? ` (${down.sqlState})` : ''}`,
          }
        : { kind: 'silent', error },
      latencyMs: ctx.clock.now() - started,
      error,
    };
  }
}

export function standbyPolicy(ctx: LoopContext): StandbyPolicy {
  const { config: c } = ctx;
  return {
    failures: c.failures,
    intervalMs: c.intervalMs,
    startupGraceMs: c.startupGraceMs,
    maxLagOnFailover: c.maxLagOnFailover,
    promoteAfterMs: keeperTiming(c).promoteAfterMs,
    syncRequired: c.syncStandbyNames !== '',
  };
}

async function askWitness(ctx: LoopContext): Promise<{ vote: WitnessVote; detail?: string }> {
  const { config: c } = ctx;
  if (!c.witness) return { vote: 'none' };
  try {
    const reply = await requestVote(
      c.witness.url,
      { candidate: c.node.name, primary: c.peer.name },
      { ...(c.http.token ? { token: c.http.token } : {}), timeoutMs: Math.max(c.connectTimeoutMs * 2, 1000) },
    );
    return { vote: reply.granted ? 'granted' : 'denied', detail: reply.reason };
  } catch (err) {
    return { vote: 'unreachable', detail: errorText(err) };
  }
}

export async function standbyIteration(ctx: LoopContext, localFacts: LocalFacts): Promise<StandbyAction> {
  const { config: c, state: s, metrics: m } = ctx;
  const local = localFacts.standby ?? null;
  if (!local)
    ctx.logger.warn(
      { err: localFacts.partialError },
      `could not read local replay status: ${localFacts.partialError}`,
    );
  const probeStartedAt = ctx.clock.now();
  const probe = await probePrimary(ctx);
  // Silence: did the primary's walsender send us anything while it ignored the probe?
  const receiverNow =
    !probe.ok && probe.outcome.kind === 'silent' && ctx.session
      ? await ctx.session.run('walreceiver', (q) => walReceiverStatus(q)).catch(() => null)
      : (local?.receiver ?? null);
  const now = ctx.clock.now();

  s.lastProbeLatencyMs = Math.round(probe.latencyMs);
  m.probeLatency.set(probe.latencyMs / 1000);
  if (!probe.ok) m.probeFailures.inc();
  if (probe.ok && probe.role !== 'primary') {
    // The peer answers but is no primary: nothing failed, yet no primary was seen either.
    s.primaryWatch = { ...s.primaryWatch, consecutiveFailures: 0 };
  } else {
    s.primaryWatch = observePrimaryProbe(s.primaryWatch, probe.outcome, now);
  }
  m.consecutiveFailures.set(s.primaryWatch.consecutiveFailures);
  s.peerRole = probe.ok ? (probe.role ?? 'unknown') : probe.outcome.kind === 'answered' ? 'unknown' : 'down';
  if (probe.ok) {
    s.peerReportedDownAt = null;
    if (probe.lsn !== undefined) s.lastPrimaryLsn = probe.lsn;
    if (probe.sync) s.sync = probe.sync;
  }
  if (s.syncRecheckUntil !== null && (s.sync === 'sync' || now >= s.syncRecheckUntil))
    s.syncRecheckUntil = null;

  if (local) {
    s.replayPaused = local.replay.replayPaused;
    s.replicaStreaming = local.receiver?.status === 'streaming';
    const replay = local.replay.replayLsn;
    let lag = local.replay.lagBytes;
    if (
      replay !== null &&
      s.lastPrimaryLsn !== null &&
      s.lastPrimaryLsn > replay &&
      s.lastPrimaryLsn - replay > lag
    )
      lag = s.lastPrimaryLsn - replay;
    s.lagBytes = replay === null ? null : lag;
  } else {
    s.replicaStreaming = false;
    s.lagBytes = null;
  }
  if (s.lagBytes !== null) m.lagBytes.set(Number(s.lagBytes));

  if (probe.ok && probe.role !== 'primary') {
    const action: StandbyAction = {
      kind: 'wait',
      key: 'peer-not-primary',
      reason: `peer ${c.peer.name} answers but is ${probe.role}: no primary to follow, nothing to do`,
    };
    ctx.record(action.kind, action.reason, {}, 'peer-not-primary');
    return action;
  }

  const rcv = receiverNow;
  const receiver: ReceiverFacts | null = rcv
    ? {
        streaming: rcv.status === 'streaming',
        lastMsgAgeMs: rcv.lastMsgAgeMs,
        probeAgeMs: now - probeStartedAt,
        ...(rcv.senderHost ? { sender: `${rcv.senderHost}:${rcv.senderPort ?? ''}` } : {}),
      }
    : null;
  const fresh = s.peerReportedDownAt !== null && now - s.peerReportedDownAt < c.failures * c.intervalMs;
  const facts: StandbyFacts = {
    now,
    startedAt: s.startedAt,
    probe: probe.ok ? { kind: 'ok' } : probe.outcome,
    watch: s.primaryWatch,
    receiver,
    lagBytes: s.lagBytes,
    replayPaused: s.replayPaused,
    keeperPaused: s.paused,
    peerReportedDown: fresh,
    sync: s.sync,
    witness: c.witness ? 'not-asked' : 'none',
  };
  const policy = standbyPolicy(ctx);
  let action = decideStandby(facts, policy);
  if (action.kind === 'ask-witness') {
    ctx.logger.debug({ decision: action.kind }, action.reason);
    const { vote, detail } = await askWitness(ctx);
    action = decideStandby({ ...facts, witness: vote, ...(detail ? { witnessDetail: detail } : {}) }, policy);
  }
  const fields = {
    consecutiveFailures: s.primaryWatch.consecutiveFailures,
    lagBytes: s.lagBytes === null ? null : Number(s.lagBytes),
    ...(probe.error ? { probeError: probe.error } : {}),
    ...(action.kind === 'blocked' ? { gates: action.gates } : {}),
  };
  ctx.record(action.kind, action.reason, fields, action.key);
  if (action.kind === 'promote') await promoteLocal(ctx, action.reason);
  return action;
}

/**
 * Promotes the local standby. With sync replication configured, synchronous_standby_names
 * is cleared first (ALTER SYSTEM works during recovery): the old primary is gone, and the new
 * one must not make its first commits wait for it. Primary mode restores the names once the
 * old primary streams again as a standby.
 */
export async function promoteLocal(ctx: LoopContext, reason: string): Promise<void> {
  const { config: c, state: s } = ctx;
  const oldRole = s.role;
  try {
    const run = async (q: Parameters<typeof promote>[0]) => {
      const clearSync = c.syncStandbyNames !== '' && (await readSyncStandbyNames(q)).trim() !== '';
      return promote(q, {
        waitSeconds: 60,
        node: c.node.name,
        ...(clearSync ? { settings: { synchronous_standby_names: '' } } : {}),
      });
    };
    // On the keeper's open session when there is one: no connection and SCRAM exchange to
    // wait for while the pair has no primary.
    const result = ctx.session
      ? await ctx.session.run('promote', run, undefined, 65_000)
      : await withSession(c.node.conninfo, { timeoutMs: 65_000, node: c.node.name, action: 'promote' }, run);
    s.counters.promotions++;
    ctx.metrics.promotions.inc();
    s.role = 'primary';
    s.lastServingRole = 'primary';
    s.roleSince = ctx.clock.now();
    s.primaryWatch = INITIAL_WATCH;
    s.standbyWatch = INITIAL_STANDBY_WATCH;
    s.timeline = result.timeline;
    s.degraded = c.syncStandbyNames !== '';
    s.currentSyncNames = c.syncStandbyNames !== '' ? '' : s.currentSyncNames;
    ctx.guard?.grant(`promoted: ${reason.replace(/^promoting: /, '')}`);
    ctx.logger.warn(
      {
        timeline: result.timeline,
        event: 'promoted',
        ms: Math.round(result.elapsedMs),
        wakeups: result.wakeups,
      },
      `promoted to primary on timeline ${result.timeline} (recovery ended ${Math.round(result.elapsedMs)} ms after the request)`,
    );
    ctx.hook('promote', reason, { oldRole });
    ctx.hook('role_change', reason, { oldRole });
  } catch (err) {
    ctx.logger.error({ err: errorText(err), event: 'promote_failed' }, `promotion failed: ${errorText(err)}`);
  }
  ctx.wake();
}
