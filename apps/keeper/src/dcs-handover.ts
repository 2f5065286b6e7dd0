import { fence } from '@pgfleet/roles';
import { currentWalLsn, formatLsn, type Lsn } from '@pgfleet/wal';
import { selectCandidate } from './candidate-decision.js';
import { errorText, type LoopContext } from './context.js';
import type { ClusterSnapshot, Handover } from './dcs/index.js';
import { requireDcs } from './dcs-node.js';
import { otherMembersFacts } from './dcs-standby-loop.js';
import { wantedSyncCount } from './dcs-sync.js';
import type { PostResult } from './http-server.js';
import { KEEPER_APPLICATION_NAME, withSession } from './session.js';
import { noteFence } from './state.js';
import { rollBackSwitchoverFence } from './switchover.js';

/**
 * Operator handovers on etcd. Both write the handover into the cluster's config key (only its
 * `to` may take the leader key once `from` no longer holds it: dcs-standby-loop.ts) and wait
 * until `to` leads.
 *
 * Switchover, run by the leader's keeper: fence this primary, wait until the candidate received
 * every byte of WAL up to the fenced position, release the leader key; the candidate wins it and
 * promotes, the others follow. Nothing acknowledged is lost: nothing commits after the fence. If
 * anything fails before the key is released, the fence is lifted again. The old primary stays
 * fenced until rejoined (`pgfleet-keeper rejoin`).
 *
 * Failover --candidate, on any keeper while no member holds the leader key (the primary is
 * gone): the named standby is promoted if its gates pass (with force: whatever its lag).
 */

const HANDOVER_MS = 60_000;
const CATCH_UP_TIMEOUT_MS = 30_000;
const PROMOTE_TIMEOUT_MS = 30_000;

function candidateOf(body: unknown): string | undefined {
  const v = (body as { candidate?: unknown } | null)?.candidate;
  return typeof v === 'string' && v !== '' ? v : undefined;
}

async function setHandover(ctx: LoopContext, h: Handover | undefined): Promise<void> {
  await requireDcs(ctx).updateConfig(
    (cur) => {
      const { handover: _, ...rest } = cur;
      return h ? { ...rest, handover: h } : rest;
    },
    { signal: ctx.signal },
  );
}

/** Polls etcd until `name` holds the leader key and publishes itself primary; null on timeout. */
async function untilLeader(
  ctx: LoopContext,
  name: string,
  timeoutMs: number,
): Promise<ClusterSnapshot | null> {
  const deadline = ctx.clock.now() + timeoutMs;
  while (ctx.clock.now() < deadline && !ctx.signal.aborted) {
    const snap = await requireDcs(ctx)
      .readCluster({ signal: ctx.signal })
      .catch(() => null);
    if (snap?.leader?.name === name && snap.members.some((m) => m.name === name && m.role === 'primary'))
      return snap;
    await ctx.clock.sleep(50, ctx.signal);
  }
  return null;
}

export async function dcsSwitchover(ctx: LoopContext, body: unknown): Promise<PostResult> {
  const { config: c, state: s, logger } = ctx;
  const dcs = requireDcs(ctx);
  const refuse = (status: number, error: string): PostResult => {
    logger.warn({ event: 'switchover_refused' }, `switchover refused: ${error}`);
    return { status, body: { ok: false, error } };
  };
  if (s.role !== 'primary')
    return refuse(409, `${c.node.name} is ${s.role}: run the switchover on the leader's keeper`);
  if (s.paused) return refuse(409, 'the cluster is paused');
  if (s.fenced) return refuse(409, 'this primary is fenced');
  if (s.switchoverRunning) return refuse(409, 'a switchover is already running');
  const snap = await dcs.readCluster({ signal: ctx.signal }).catch(() => null);
  if (!snap) return refuse(503, `etcd does not answer: ${s.dcs.lastError ?? 'no read'}`);
  if (snap.leader?.name !== c.node.name) return refuse(409, `${c.node.name} does not hold the leader key`);
  const requested = candidateOf(body);
  const decision = selectCandidate({
    members: await otherMembersFacts(ctx, snap),
    formerLeader: c.node.name,
    lastPrimaryLsn: s.lsn,
    clusterTimeline: s.timeline,
    synchronous: wantedSyncCount(ctx, snap) > 0 || (snap.sync !== null && snap.sync.minAcks > 0),
    sync: snap.sync,
    maxLagOnFailover: c.maxLagOnFailover,
    ...(requested ? { requested: { name: requested, force: false } } : {}),
  });
  const to = decision.best;
  if (!to) return refuse(409, `no standby to switch over to: ${decision.reason}`);

  s.switchoverRunning = true;
  s.holdFence = true;
  ctx.guard?.revoke(`switchover to ${to}`);
  let released = false;
  try {
    await setHandover(ctx, {
      kind: 'switchover',
      from: c.node.name,
      to,
      force: false,
      until: new Date(Date.now() + HANDOVER_MS).toISOString(),
    });
    logger.warn({ event: 'switchover', to }, `switchover to ${to}: fencing ${c.node.name}`);
    const target: Lsn = await withSession(
      c.node.conninfo,
      { timeoutMs: 10_000, node: c.node.name, action: 'switchover fence' },
      async (q) => {
        await fence(q, {
          reason: `switchover to ${to}`,
          node: c.node.name,
          keepApplicationNames: [KEEPER_APPLICATION_NAME],
        });
        return currentWalLsn(q);
      },
    );
    const fenceReason = `switchover to ${to}`;
    noteFence(s, fenceReason);
    ctx.hook('fence', fenceReason);

    // The candidate must have received everything the fenced primary wrote: promotion replays
    // all it received, so then nothing acknowledged is missing.
    const deadline = ctx.clock.now() + CATCH_UP_TIMEOUT_MS;
    for (;;) {
      const now = await dcs.readCluster({ signal: ctx.signal }).catch(() => null);
      const fresh = now ? (await otherMembersFacts(ctx, now)).find((m) => m.name === to) : undefined;
      const got = [fresh?.receivedLsn ?? null, fresh?.replayedLsn ?? null].filter(
        (l): l is Lsn => l !== null,
      );
      if (got.some((l) => l >= target)) break;
      if (ctx.clock.now() > deadline)
        throw new Error(
          `${to} did not receive WAL up to ${formatLsn(target)} within ${CATCH_UP_TIMEOUT_MS} ms`,
        );
      await ctx.clock.sleep(50, ctx.signal);
    }
    released = await dcs.releaseLeader({ signal: ctx.signal });
    if (!released) throw new Error('could not release the leader key (no longer ours?)');
    s.dcs.heldUntil = null;
    s.dcs.fenceBy = null;
    const led = await untilLeader(ctx, to, PROMOTE_TIMEOUT_MS);
    await setHandover(ctx, undefined).catch(() => {});
    if (!led)
      return {
        status: 500,
        body: { ok: false, error: `${to} did not take the leader key in time`, fenced: true },
      };
    const reason = `switchover done: ${to} leads; ${c.node.name} stays fenced until rejoined`;
    ctx.record('switchover', reason);
    const timeline = led.members.find((m) => m.name === to)?.timeline ?? null;
    return { status: 200, body: { ok: true, promoted: to, timeline, lsn: formatLsn(target) } };
  } catch (err) {
    logger.error({ event: 'switchover_failed', err: errorText(err) }, `switchover failed: ${errorText(err)}`);
    await setHandover(ctx, undefined).catch(() => {});
    if (!released) await rollBackSwitchoverFence(ctx);
    return {
      status: 500,
      body: { ok: false, error: `switchover failed: ${errorText(err)}`, fenced: s.fenced },
    };
  } finally {
    s.switchoverRunning = false;
  }
}

export async function dcsFailover(ctx: LoopContext, body: unknown): Promise<PostResult> {
  const { state: s, logger } = ctx;
  const dcs = requireDcs(ctx);
  const force = (body as { force?: unknown } | null)?.force === true;
  const refuse = (status: number, error: string): PostResult => {
    logger.warn({ event: 'failover_refused', force }, `failover refused: ${error}`);
    return { status, body: { ok: false, error } };
  };
  const to = candidateOf(body);
  if (!to) return refuse(400, 'on etcd, failover needs --candidate <member>');
  const snap = await dcs.readCluster({ signal: ctx.signal }).catch(() => null);
  if (!snap) return refuse(503, `etcd does not answer: ${s.dcs.lastError ?? 'no read'}`);
  if (snap.leader) return refuse(409, `${snap.leader.name} holds the leader key: use switchover`);
  const from = s.dcs.leader?.name ?? snap.history.at(-1)?.leader ?? null;
  if (!from) return refuse(409, 'no former leader known: nothing to fail over from');
  if (!snap.members.some((m) => m.name === to && m.role === 'standby'))
    return refuse(409, `${to} is not a standby with a live keeper`);
  await setHandover(ctx, {
    kind: 'failover',
    from,
    to,
    force,
    until: new Date(Date.now() + HANDOVER_MS).toISOString(),
  });
  logger.warn({ event: 'failover', to, force }, `failover to ${to} requested${force ? ' (forced)' : ''}`);
  const led = await untilLeader(ctx, to, PROMOTE_TIMEOUT_MS);
  await setHandover(ctx, undefined).catch(() => {});
  if (!led)
    return refuse(
      409,
      `${to} did not take the leader key within ${PROMOTE_TIMEOUT_MS} ms: see its keeper's log for the gate that blocked it${force ? '' : ' (--force skips lag, streaming and quorum checks)'}`,
    );
  const timeline = led.members.find((m) => m.name === to)?.timeline ?? null;
  return { status: 200, body: { ok: true, promoted: to, timeline, forced: force } };
}
