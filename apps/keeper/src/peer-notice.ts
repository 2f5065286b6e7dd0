import type { LoopContext } from './context.js';
import type { PostResult } from './http-server.js';
import type { PeerNotice } from './peer-client.js';
import { acceptSwitchover } from './switchover.js';

/**
 * POST /peer/notify in a pair: the other keeper's notices (its primary is down, sync degraded
 * or restored, a switchover hand-over). A hint to look again now, never a decision by itself.
 */
export async function handleNotice(ctx: LoopContext, body: unknown): Promise<PostResult> {
  const { config: c, state: s, logger } = ctx;
  const n = body as Partial<PeerNotice>;
  if (typeof n?.event !== 'string' || typeof n.node !== 'string')
    return { status: 400, body: { error: 'expected { event, node }' } };
  if (n.node !== c.peer.name) return { status: 403, body: { error: `${n.node} is not this keeper's peer` } };
  logger.info({ event: 'peer_notice', notice: n.event, reason: n.reason }, `peer ${n.node} says: ${n.event}`);
  switch (n.event) {
    case 'primary-down':
      if (s.role === 'standby') {
        s.peerReportedDownAt = ctx.clock.now();
        ctx.wake();
      }
      return { status: 200, body: { ok: true } };
    case 'degraded':
      s.sync = 'degraded';
      return { status: 200, body: { ok: true } };
    case 'restored':
      // Not trusted as such: our last probe may have seen '' just before the restore, and
      // until a probe sees us synchronous we would refuse to promote. Re-probe now.
      if (s.role === 'standby') {
        s.syncRecheckUntil = ctx.clock.now() + c.intervalMs;
        ctx.wake();
      }
      return { status: 200, body: { ok: true } };
    case 'switchover':
      return acceptSwitchover(ctx, n.node, (body as { lsn?: unknown }).lsn);
    default:
      return { status: 400, body: { error: `unknown event ${String(n.event)}` } };
  }
}
