import type { Queryable } from '@pgfleet/connection';
import {
  detectRoleOn,
  downReasonFromError,
  type NodeRole,
  replayStatus,
  setSyncStandbyNames,
  unfence,
} from '@pgfleet/roles';
import { errorText, type LoopContext } from './context.js';
import { releaseLeadership } from './dcs-primary-loop.js';
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
import { withSession } from './session.js';
import { noteFence } from './state.js';
import { keeperTiming } from './timing.js';
import { judgeLease, type WitnessView } from './write-lease.js';

/**
 * Primary mode, one iteration: look at the standby both ways (its server answers and replays;
 * our pg_stat_replication shows it streaming, synchronously when it should), heartbeat the
 * witness, then carry out the pure decisions: fence/unfence first, degrade/restore second.
 */

interface PeerFacts {
  reachable: boolean;
  /** The probe failed but the server replied (wrong password...): it is alive. */
  answered: boolean;
  error?: string;
  role: NodeRole | 'unknown';
  /** A primary peer runs with default_transaction_read_only (fenced). */
  fenced: boolean;
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
          answered: true,
          role: info.role,
          fenced: info.fenced ?? false,
          timeline: info.timeline ?? null,
          replay,
          latencyMs: ctx.clock.now() - started,
        };
      },
    );
  } catch (err) {
    return {
      reachable: false,
      answered: downReasonFromError(err).answered,
      error: errorText(err),
      role: 'down',
      fenced: false,
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

async function heartbeatWitness(
  ctx: LoopContext,
  role: 'primary' | 'down',
  timeline: number | null,
): Promise<void> {
  const { config: c, state: s } = ctx;
  if (!c.witness) return;
  s.witnessAnswered = false;
  try {
    const reply = await sendHeartbeat(
      c.witness.url,
      {
        node: c.node.name,
        role,
        timeline,
        standbyPromotable: s.standbyPromotable,
        fenced: s.fenced,
        writable: role === 'primary' && (ctx.guard?.writable(ctx.clock.now()) ?? false),
        leaseMs: keeperTiming(c).leaseMs,
      },
      { ...(c.http.token ? { token: c.http.token } : {}), timeoutMs: c.connectTimeoutMs },
    );
    s.lastWitnessContactAt = ctx.clock.now();
    s.witnessAnswered = true;
    s.witnessGrantedToPeer = reply.grantedTo === c.peer.name;
  } catch (err) {
    ctx.logger.debug({ err: errorText(err) }, 'witness heartbeat failed');
  }
}

/**
 * The local primary is gone (or was stopped by this keeper): tell the standby's keeper (fast
 * path) and the witness (so it no longer counts our write lease).
 */
export async function announceDown(ctx: LoopContext, reason: string): Promise<void> {
  if (ctx.dcs) {
    // On etcd: the leader key goes now, and the standbys' watches see it at once.
    await releaseLeadership(ctx, reason);
    return;
  }
  // Both at once: the standby re-asks the witness quickly if it asks before our word arrived.
  tellPeer(ctx, 'primary-down', reason);
  await heartbeatWitness(ctx, 'down', ctx.state.timeline);
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
  if (action.kind === 'fence') {
    await ctx.guard?.fence(action.reason);
    return;
  }
  ctx.record(action.kind, action.reason);
  try {
    await onLocal(ctx, 'unfence', (q) => unfence(q, { node: c.node.name }));
    noteFence(s, null);
    ctx.metrics.fenced.set(0);
    ctx.logger.warn({ event: 'unfenced' }, 'unfenced');
    ctx.hook('unfence', action.reason);
  } catch (err) {
    ctx.logger.error({ err: errorText(err) }, `unfence failed: ${errorText(err)}`);
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
  const evidenceSince = ctx.clock.now();
  const peer = await peerFacts(ctx);
  const now = ctx.clock.now();
  // A server that answered our probe with an error (a wrong password in peer.conninfo) and
  // streams from us is a standby. The walsender row alone proves nothing: it stays
  // 'streaming' for wal_sender_timeout after the standby vanished (partition, frozen host).
  const rowStreaming = peer.answered && row?.state === 'streaming';
  if (!peer.reachable && rowStreaming && row) {
    peer.role = 'standby';
    peer.replay = { replayLsn: row.replayLsn, receiveLsn: row.flushLsn, paused: false };
  }
  // For synchronous replication only: a standby whose server we cannot query (a wrong port in
  // peer.conninfo) but whose walreceiver keeps replying, or has nothing left to reply to, is
  // replicating fine: no reason to degrade. A frozen or cut-off standby stops replying while
  // commits wait, and counts as failing as before.
  const replyTime = row?.replyTime?.getTime() ?? null;
  const replying =
    row?.state === 'streaming' &&
    ((replyTime !== null && s.lastStandbyReplyAt !== null && replyTime > s.lastStandbyReplyAt) ||
      (row.flushLsn !== null && local.lsn !== undefined && row.flushLsn >= local.lsn));
  s.lastStandbyReplyAt = replyTime;
  if (!peer.reachable && replying && row && !peer.replay)
    peer.replay = { replayLsn: row.replayLsn, receiveLsn: row.flushLsn, paused: false };

  s.lastProbeLatencyMs = Math.round(peer.latencyMs);
  m.probeLatency.set(peer.latencyMs / 1000);
  if (!peer.reachable) m.probeFailures.inc();
  s.peerRole = peer.role;
  s.peerTimeline = peer.timeline;
  if (peer.reachable || peer.answered || rowStreaming) s.lastStandbyContactAt = now;
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
    standbyReachable: peer.role === 'standby' || (!peer.reachable && replying),
    peerIsPrimary: peer.role === 'primary',
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

  s.standbyPromotable =
    c.syncStandbyNames === '' ||
    (!s.degraded &&
      mine.row?.state === 'streaming' &&
      (mine.row.syncState === 'sync' || mine.row.syncState === 'quorum'));
  await heartbeatWitness(ctx, 'primary', local.timeline ?? null);
  const witness: WitnessView = !c.witness
    ? 'none'
    : !s.witnessAnswered
      ? 'unreachable'
      : s.witnessGrantedToPeer
        ? 'granted-to-peer'
        : 'ok';
  const guard = ctx.guard;
  if (guard)
    guard.judge(
      judgeLease({
        localPrimary: local.role === 'primary' && !local.fenced && !s.fenced,
        localAccepting: await guard.checkAccepting(ctx.clock.now()),
        myTimeline: local.timeline ?? null,
        peers: [{ name: c.peer.name, role: peer.role, fenced: peer.fenced, timeline: peer.timeline }],
        witness,
      }),
      evidenceSince,
    );

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
