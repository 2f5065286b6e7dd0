import { fence, replayStatus, unfence } from '@pgfleet/roles';
import { currentWalLsn, formatLsn, type Lsn, parseLsn } from '@pgfleet/wal';
import { errorText, type LoopContext } from './context.js';
import type { PostResult } from './http-server.js';
import { postJson } from './peer-client.js';
import { KEEPER_APPLICATION_NAME, withSession } from './session.js';
import { promoteLocal } from './standby-loop.js';
import { noteFence } from './state.js';

/**
 * Planned switchover, run by the primary's keeper: fence this primary (no new writes), wait
 * until the standby has replayed every byte of WAL, ask the standby's keeper to promote, and
 * stay fenced until the operator rejoins it as a standby (`pgfleet-keeper rejoin`). Zero acknowledged writes are lost because nothing commits after the
 * fence and the standby promotes only once it replayed up to the fenced primary's last LSN.
 * If anything fails before the standby promoted, the fence is lifted again.
 */

const CATCH_UP_TIMEOUT_MS = 30_000;

export async function switchover(ctx: LoopContext): Promise<PostResult> {
  const { config: c, state: s, logger } = ctx;
  const refuse = (status: number, error: string): PostResult => {
    logger.warn({ event: 'switchover_refused' }, `switchover refused: ${error}`);
    return { status, body: { error } };
  };
  if (s.role !== 'primary')
    return refuse(409, `${c.node.name} is ${s.role}: run the switchover on the primary's keeper`);
  if (!c.peer.keeperUrl) return refuse(409, 'switchover needs peer.keeperUrl');
  if (s.paused) return refuse(409, 'keeper is paused');
  if (s.fenced) return refuse(409, 'primary is fenced');
  if (s.switchoverRunning) return refuse(409, 'a switchover is already running');
  if (s.peerRole !== 'standby' || s.standbyWatch.consecutiveFailures > 0)
    return refuse(409, `standby ${c.peer.name} is not healthy (${s.standbyWatch.lastProblem ?? s.peerRole})`);

  s.switchoverRunning = true;
  s.holdFence = true;
  ctx.guard?.revoke(`switchover to ${c.peer.name}`);
  const local = (action: string) => ({ timeoutMs: 10_000, node: c.node.name, action });
  let promoted = false;
  try {
    logger.warn({ event: 'switchover' }, `switchover to ${c.peer.name}: fencing ${c.node.name}`);
    const target: Lsn = await withSession(c.node.conninfo, local('switchover fence'), async (q) => {
      await fence(q, {
        reason: `switchover to ${c.peer.name}`,
        node: c.node.name,
        keepApplicationNames: [KEEPER_APPLICATION_NAME],
      });
      return currentWalLsn(q);
    });
    const fenceReason = `switchover to ${c.peer.name}`;
    noteFence(s, fenceReason);
    ctx.hook('fence', fenceReason);

    const deadline = ctx.clock.now() + CATCH_UP_TIMEOUT_MS;
    for (;;) {
      const replay = await withSession(
        c.peer.conninfo,
        { timeoutMs: c.connectTimeoutMs, node: c.peer.name, action: 'switchover catch-up' },
        (q) => replayStatus(q),
      ).catch(() => null);
      if (replay?.replayLsn != null && replay.replayLsn >= target) break;
      if (ctx.clock.now() > deadline)
        throw new Error(`standby did not replay up to ${formatLsn(target)} within ${CATCH_UP_TIMEOUT_MS} ms`);
      await ctx.clock.sleep(50);
    }

    const reply = await postJson<{ ok: boolean; timeline?: number; error?: string }>(
      `${c.peer.keeperUrl.replace(/\/+$/, '')}/peer/notify`,
      { event: 'switchover', node: c.node.name, lsn: formatLsn(target) },
      { ...(c.http.token ? { token: c.http.token } : {}), timeoutMs: 70_000 },
    );
    if (!reply.ok) throw new Error(`standby keeper refused: ${reply.error ?? 'no reason'}`);
    promoted = true;
    const reason = `switchover done: ${c.peer.name} promoted on timeline ${reply.timeline}; ${c.node.name} stays fenced until rejoined`;
    ctx.record('switchover', reason);
    return {
      status: 200,
      body: { ok: true, promoted: c.peer.name, timeline: reply.timeline ?? null, lsn: formatLsn(target) },
    };
  } catch (err) {
    logger.error({ event: 'switchover_failed', err: errorText(err) }, `switchover failed: ${errorText(err)}`);
    if (!promoted) await rollBackSwitchoverFence(ctx);
    return { status: 500, body: { error: `switchover failed: ${errorText(err)}`, fenced: s.fenced } };
  } finally {
    s.switchoverRunning = false;
  }
}

/**
 * A switchover that failed before the other side took over: lift the fence it set, so the old
 * primary takes writes again (pair and etcd alike). A failure to unfence is logged; the node
 * then stays fenced, which is safe.
 */
export async function rollBackSwitchoverFence(ctx: LoopContext): Promise<void> {
  const { config: c, state: s, logger } = ctx;
  try {
    await withSession(
      c.node.conninfo,
      { timeoutMs: 10_000, node: c.node.name, action: 'switchover rollback' },
      (q) => unfence(q, { node: c.node.name }),
    );
    noteFence(s, null);
    s.holdFence = false;
    ctx.hook('unfence', 'switchover rolled back');
  } catch (undo) {
    logger.error(
      { err: errorText(undo) },
      `could not lift the fence after the failed switchover: ${errorText(undo)}`,
    );
  }
}

/** The standby side: promote now if everything up to `lsn` is replayed. */
export async function acceptSwitchover(
  ctx: LoopContext,
  from: string,
  lsnText: unknown,
): Promise<PostResult> {
  const { config: c, state: s } = ctx;
  if (s.role !== 'standby') return { status: 409, body: { ok: false, error: `${c.node.name} is ${s.role}` } };
  if (typeof lsnText !== 'string') return { status: 400, body: { ok: false, error: 'missing lsn' } };
  let target: Lsn;
  try {
    target = parseLsn(lsnText);
  } catch {
    return { status: 400, body: { ok: false, error: `bad lsn ${lsnText}` } };
  }
  const replay = await withSession(
    c.node.conninfo,
    { timeoutMs: c.connectTimeoutMs, node: c.node.name, action: 'switchover check' },
    (q) => replayStatus(q),
  );
  if (replay.replayLsn === null || replay.replayLsn < target)
    return {
      status: 409,
      body: {
        ok: false,
        error: `replayed only up to ${replay.replayLsn ? formatLsn(replay.replayLsn) : 'nothing'}, need ${lsnText}`,
      },
    };
  await promoteLocal(ctx, `promoting: switchover requested by ${from}, replayed up to ${lsnText}`);
  if ((s.role as string) !== 'primary')
    return { status: 500, body: { ok: false, error: 'promotion failed, see the standby keeper log' } };
  return { status: 200, body: { ok: true, timeline: s.timeline } };
}
