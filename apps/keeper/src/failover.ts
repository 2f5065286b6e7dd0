import type { LoopContext } from './context.js';
import type { PostResult } from './http-server.js';
import { decideStandby } from './standby-decision.js';
import { probePrimary, promoteLocal, standbyPolicy } from './standby-loop.js';

/**
 * Manual failover (`pgfleet-keeper failover [--force]`), run by the standby's keeper: the
 * operator says the primary is gone, so the keeper skips the failures × interval wait, the
 * startup grace and the witness. It still probes the primary once and refuses while it
 * answers (two writers; use switchover). Without --force every data gate still applies (lag,
 * paused replay, a degraded or asynchronous standby); --force promotes despite them and says
 * what may be lost.
 */
export async function manualFailover(ctx: LoopContext, body: unknown): Promise<PostResult> {
  const { config: c, state: s, logger } = ctx;
  const force = (body as { force?: unknown } | null)?.force === true;
  const refuse = (status: number, error: string, gates?: string[]): PostResult => {
    logger.warn({ event: 'failover_refused', force }, `failover refused: ${error}`);
    return { status, body: { ok: false, error, ...(gates ? { gates } : {}) } };
  };
  if (s.role !== 'standby')
    return refuse(409, `${c.node.name} is ${s.role}: run failover on the standby's keeper`);
  const probe = await probePrimary(ctx);
  if (probe.ok && probe.role === 'primary')
    return refuse(409, `primary ${c.peer.name} answers: use switchover (failover would leave two writers)`);
  if (probe.outcome.kind === 'answered' && !force)
    return refuse(
      409,
      `primary ${c.peer.name} answered: ${probe.outcome.message}: it is alive (--force promotes anyway, leaving two writers unless you stopped it)`,
    );

  const action = decideStandby(
    {
      now: ctx.clock.now(),
      startedAt: s.startedAt,
      probe: { kind: 'silent', error: 'operator says the primary is gone' },
      watch: {
        ...s.primaryWatch,
        consecutiveFailures: c.failures,
        primarySeenOnce: true,
        lastSeenAt: Number.NEGATIVE_INFINITY,
      },
      receiver: null,
      lagBytes: s.lagBytes,
      replayPaused: s.replayPaused,
      keeperPaused: false,
      peerReportedDown: false,
      sync: s.sync,
      witness: 'none',
    },
    standbyPolicy(ctx),
  );
  let reason: string;
  if (action.kind === 'blocked') {
    if (!force) return refuse(409, `${action.reason} (--force promotes anyway)`, action.gates);
    reason = `promoting: manual failover forced by the operator despite: ${action.gates.join('; ')}`;
  } else {
    reason = `promoting: manual failover by the operator, primary ${c.peer.name} unreachable, gates passed`;
  }
  ctx.record('promote', reason);
  await promoteLocal(ctx, reason);
  if ((s.role as string) !== 'primary')
    return { status: 500, body: { ok: false, error: 'promotion failed, see the keeper log' } };
  return { status: 200, body: { ok: true, promoted: c.node.name, timeline: s.timeline, forced: force } };
}
