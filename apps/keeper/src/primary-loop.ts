import type { Queryable } from '@pgfleet/connection';
import {
  detectRoleOn,
  fence,
  type NodeRole,
  type RoleInfo,
  replayStatus,
  setSyncStandbyNames,
  unfence,
} from '@pgfleet/roles';
import { errorText, type LoopContext } from './context.js';
import { decideFence, type FenceAction } from './fence-decision.js';
import type { LocalFacts } from './local-facts.js';
import { notifyPeer, type PeerEvent, sendHeartbeat } from './peer-client.js';
import {
  decidePrimary,
  isDegraded,
  observeStandby,
  type PrimaryAction,
  type PrimaryFacts,
} from './primary-decision.js';
import { KEEPER_APPLICATION_NAME, withSession } from './session.js';

/**
 * Primary mode, one iteration: look at the standby both ways (its server answers and replays;
 * our pg_stat_replication shows it streaming, synchronously when it should), heartbeat the
 * witness, then carry out the pure decisions: fence/unfence first, degrade/restore second.
 */

interface PeerFacts {
  reachable: boolean;
  error?: string;
  role: NodeRole | 'unknown';
  timeline: number | null;
  replay: { replayLsn: bigint | null; receiveLsn: bigint | null; paused: boolean } | null;
  latencyMs: number;
}

async function peerFacts(ctx: LoopContext): Promise<PeerFacts> {
  const { config: c } = ctx;
  const started = ctx.clock.now();
  try {
    return await withSession(
      c.peer.conninfo,
      { timeoutMs: c.connectTimeoutMs, node: c.peer.name, action: 'probe', signal: ctx.signal },
      async (q) => {
        const info = await detectRoleOn(q);
        let replay: PeerFacts['replay'] = null;
        if (info.role === 'standby') {
          const r = await replayStatus(q);
          replay = { replayLsn: r.replayLsn, receiveLsn: r.receiveLsn, paused: r.replayPaused };
        }
        return {
          reachable: true,
          role: info.role,
          timeline: info.timeline ?? null,
          replay,
          latencyMs: ctx.clock.now() - started,
        };
      },
    );
  } catch (err) {
    return {
      reachable: false,
      error: errorText(err),
      role: 'down',
      timeline: null,
      replay: null,
      latencyMs: ctx.clock.now() - started,
    };
  }
}

/** The standby's walsender row, preferring the streaming one when a reconnect left two. */
function standbyRow(ctx: LoopContext, local: LocalFacts) {
  const rows = (local.primary?.streams ?? []).filter((r) => r.applicationName === ctx.config.peer.name);
  return rows.find((r) => r.state === 'streaming') ?? rows[0] ?? null;
}

async function heartbeatWitness(ctx: LoopContext, local: RoleInfo, promotable: boolean): Promise<void> {
  const { config: c, state: s } = ctx;
  if (!c.witness) return;
  try {
    const reply = await sendHeartbeat(
      c.witness.url,
      {
        node: c.node.name,
        role: 'primary',
        timeline: local.timeline ?? null,
        standbyPromotable: promotable,
        fenced: s.fenced,
      },
      { ...(c.http.token ? { token: c.http.token } : {}), timeoutMs: c.connectTimeoutMs },
    );
    s.lastWitnessContactAt = ctx.clock.now();
    s.witnessGrantedToPeer = reply.grantedTo === c.peer.name;
  } catch (err) {
    ctx.logger.debug({ err: errorText(err) }, 'witness heartbeat failed');
  }
}

/** Best-effort notice to the peer keeper; its own probes stay the source of truth. */
export function tellPeer(ctx: LoopContext, event: PeerEvent, reason: string): void {
  const { config: c, state: s } = ctx;
  if (!c.peer.keeperUrl) return;
  notifyPeer(
    c.peer.keeperUrl,
    { event, node: c.node.name, timeline: s.timeline, reason },
    { ...(c.http.token ? { token: c.http.token } : {}), timeoutMs: c.connectTimeoutMs },
  ).catch((err) =>
    ctx.logger.warn({ err: errorText(err), event }, `could not tell the peer keeper: ${errorText(err)}`),
  );
}

async function onLocal<T>(ctx: LoopContext, action: string, fn: (q: Queryable) => Promise<T>): Promise<T> {
  const { config: c } = ctx;
  return withSession(
    c.node.conninfo,
    { timeoutMs: Math.max(10_000, c.connectTimeoutMs), node: c.node.name, action },
    fn,
  );
}

async function executeFence(ctx: LoopContext, action: FenceAction): Promise<void> {
  const { config: c, state: s } = ctx;
  if (action.kind === 'none') return;
  ctx.record(action.kind, action.reason);
  try {
    if (action.kind === 'fence') {
      const res = await onLocal(ctx, 'fence', (q) =>
        fence(q, {
          reason: action.reason,
          node: c.node.name,
          keepApplicationNames: [KEEPER_APPLICATION_NAME],
        }),
      );
      s.fenced = true;
      s.fenceReason = action.reason.replace(/^fencing: /, '');
      s.counters.fences++;
      ctx.metrics.fences.inc();
      ctx.logger.warn(
        { terminated: res.terminated, event: 'fenced' },
        `fenced: ${res.terminated} client sessions terminated`,
      );
      ctx.hook('fence', action.reason);
    } else {
      await onLocal(ctx, 'unfence', (q) => unfence(q, { node: c.node.name }));
      s.fenced = false;
      s.fenceReason = null;
      ctx.logger.warn({ event: 'unfenced' }, 'unfenced');
      ctx.hook('unfence', action.reason);
    }
    ctx.metrics.fenced.set(s.fenced ? 1 : 0);
  } catch (err) {
    ctx.logger.error({ err: errorText(err) }, `${action.kind} failed: ${errorText(err)}`);
  }
}

async function executeSync(ctx: LoopContext, action: PrimaryAction): Promise<void> {
  const { config: c, state: s } = ctx;
  if (action.kind === 'none') return;
  const value = action.kind === 'restore' ? action.names : '';
  try {
    await onLocal(ctx, action.kind, (q) =>
      setSyncStandbyNames(q, value, { timeoutMs: 5000, node: c.node.name }),
    );
  } catch (err) {
    ctx.logger.error({ err: errorText(err) }, `${action.kind} failed: ${errorText(err)}`);
    return;
  }
  s.currentSyncNames = value;
  s.degraded = action.kind === 'degrade';
  ctx.metrics.syncDegraded.set(s.degraded ? 1 : 0);
  if (action.kind === 'degrade') {
    s.counters.degrades++;
    ctx.metrics.degrades.inc();
    ctx.hook('degrade', action.reason);
    tellPeer(ctx, 'degraded', action.reason);
  } else {
    s.counters.restores++;
    ctx.metrics.restores.inc();
    ctx.hook('restore', action.reason);
    tellPeer(ctx, 'restored', action.reason);
  }
}

export async function primaryIteration(ctx: LoopContext, localFacts: LocalFacts): Promise<PrimaryAction> {
  const { config: c, state: s, metrics: m } = ctx;
  if (!localFacts.primary)
    throw new Error(`could not read local replication status: ${localFacts.partialError}`);
  const local = localFacts.info;
  const row = standbyRow(ctx, localFacts);
  const mine = {
    syncNames: localFacts.primary.syncNames,
    row: row ? { state: row.state, syncState: row.syncState } : null,
    standbyLagBytes: row?.replayLagBytes ?? null,
  };
  const peer = await peerFacts(ctx);
  const now = ctx.clock.now();

  s.lastProbeLatencyMs = Math.round(peer.latencyMs);
  m.probeLatency.set(peer.latencyMs / 1000);
  if (!peer.reachable) m.probeFailures.inc();
  s.peerRole = peer.role;
  s.peerTimeline = peer.timeline;
  if (peer.reachable) s.lastStandbyContactAt = now;
  s.currentSyncNames = mine.syncNames;
  const policy = {
    failures: c.failures,
    syncStandbyNames: c.syncStandbyNames,
    syncRestoreLag: c.syncRestoreLag,
  };
  s.degraded = isDegraded(policy, mine.syncNames);
  m.syncDegraded.set(s.degraded ? 1 : 0);

  const facts: PrimaryFacts = {
    keeperPaused: s.paused,
    currentSyncNames: mine.syncNames,
    standbyReachable: peer.reachable && peer.role === 'standby',
    ...(peer.error
      ? { standbyError: peer.error }
      : peer.role !== 'standby'
        ? { standbyError: `peer is ${peer.role}` }
        : {}),
    row: mine.row,
    standby: peer.replay,
    primaryLsn: local.lsn ?? null,
  };
  s.standbyWatch = observeStandby(s.standbyWatch, facts, policy);
  m.consecutiveFailures.set(s.standbyWatch.consecutiveFailures);
  const replay = peer.replay?.replayLsn ?? null;
  s.standbyLagBytes =
    replay !== null && local.lsn !== undefined
      ? local.lsn > replay
        ? local.lsn - replay
        : 0n
      : mine.standbyLagBytes;
  if (s.standbyLagBytes !== null) m.lagBytes.set(Number(s.standbyLagBytes));

  const promotable =
    c.syncStandbyNames === '' ||
    (!s.degraded &&
      mine.row?.state === 'streaming' &&
      (mine.row.syncState === 'sync' || mine.row.syncState === 'quorum'));
  await heartbeatWitness(ctx, local, promotable);

  const fenceAction = decideFence(
    {
      now: ctx.clock.now(),
      startedAt: s.startedAt,
      fenced: s.fenced,
      myTimeline: local.timeline ?? null,
      peerRole: peer.role,
      peerTimeline: peer.timeline,
      lastStandbyContactAt: s.lastStandbyContactAt,
      lastWitnessContactAt: s.lastWitnessContactAt,
      witnessGrantedToPeer: s.witnessGrantedToPeer,
      holdFence: s.holdFence,
    },
    { witnessConfigured: c.witness !== undefined, fenceAfterMs: c.fenceAfterMs },
  );
  await executeFence(ctx, fenceAction);
  if (s.fenced) {
    // A fenced primary takes no writes: nothing to degrade or restore until it is unfenced
    // or rejoined as a standby.
    const action: PrimaryAction = { kind: 'none', reason: `fenced: ${s.fenceReason ?? 'read-only'}` };
    ctx.record(action.kind, action.reason);
    return action;
  }

  const action = decidePrimary(facts, s.standbyWatch, policy);
  ctx.record(action.kind, action.reason, {
    consecutiveFailures: s.standbyWatch.consecutiveFailures,
    standbyLagBytes: s.standbyLagBytes === null ? null : Number(s.standbyLagBytes),
  });
  await executeSync(ctx, action);
  return action;
}
