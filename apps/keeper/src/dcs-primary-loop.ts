import type { LoopContext } from './context.js';
import type { Dcs } from './dcs/index.js';
import { dcsCall, ensureSlots, memberState, noteSnapshot, requireDcs, writingPrimary } from './dcs-node.js';
import { manageSync } from './dcs-sync.js';
import { askFailsafe, failsafeEnabled, keepFailsafeRecord } from './failsafe.js';
import { judgeLeaderLease, type RenewalOutcome } from './leader-lease-decision.js';
import type { LocalFacts } from './local-facts.js';
import { keeperTiming } from './timing.js';

/**
 * Primary mode on etcd, one iteration: renew the leader key first (the server writes only
 * while it is held: leader-lease-decision.ts), then publish the member key and read the
 * cluster. Losing the key, or failing to renew it before the fence deadline, fences the
 * server exactly as issue 9's guard does (SQL, then signals, then a hard stop).
 */

const RETRY_PAUSE_MS = 100;

/** Renews the key; when etcd does not answer and failsafe mode is on, asks every member instead. */
async function renewOrConfirm(ctx: LoopContext, dcs: Dcs, timeoutMs: number): Promise<RenewalOutcome> {
  const outcome = await renew(ctx, dcs, timeoutMs);
  if (outcome.kind !== 'unreachable' || ctx.state.paused || !failsafeEnabled(ctx)) return outcome;
  return askFailsafe(ctx, outcome.error, timeoutMs);
}

async function renew(ctx: LoopContext, dcs: Dcs, timeoutMs: number): Promise<RenewalOutcome> {
  try {
    const r = await dcs.renewLeader({ signal: ctx.signal, timeoutMs });
    if (r.held) return { kind: 'held', heldUntil: r.heldUntil };
    if (r.holder !== null) return { kind: 'lost', reason: `${r.holder} holds it (${r.reason})` };
    // Nobody holds it: a fresh cluster, or our key lapsed. Whoever wins the transaction leads;
    // a standby promotes only after winning it, so taking it back is safe.
    const a = await dcs.acquireLeader({ signal: ctx.signal, timeoutMs });
    if (a.won) {
      ctx.logger.info({ event: 'leader_acquired' }, `${ctx.config.node.name} took the leader key`);
      return { kind: 'held', heldUntil: a.heldUntil };
    }
    return { kind: 'lost', reason: `${a.holder ?? 'another member'} took it first` };
  } catch (err) {
    return { kind: 'unreachable', error: (err as Error).message };
  }
}

export async function dcsPrimaryIteration(ctx: LoopContext, local: LocalFacts): Promise<void> {
  const { config: c, state: s, clock } = ctx;
  const dcs = requireDcs(ctx);
  const d = s.dcs;
  const timing = keeperTiming(c);
  const requestTimeoutMs = c.dcs?.etcd.requestTimeoutMs ?? c.intervalMs;
  const evidenceSince = clock.now();
  // What this node followed as a standby says nothing once it is primary (a rejoin rewrites it).
  d.following = null;

  if (s.switchoverRunning) {
    // Fenced for a switchover: keep the key (and so every other standby waiting) until the
    // candidate caught up and the switchover releases it.
    if (d.heldUntil !== null)
      await dcsCall(ctx, 'renew leader key', () => dcs.renewLeader({ signal: ctx.signal }));
    await publish(ctx, local);
    ctx.record('wait', 'switchover under way');
    return;
  }
  if (local.info.fenced || s.fenced) {
    // A fenced primary takes no writes and does not lead: a standby may take over.
    if (d.heldUntil !== null || d.snapshot?.leader?.name === c.node.name)
      await dcsCall(ctx, 'release leader key', () => dcs.releaseLeader({ signal: ctx.signal }));
    d.heldUntil = null;
    d.fenceBy = null;
    await publish(ctx, local);
    ctx.record(
      'wait',
      `fenced primary (${s.fenceReason ?? 'read-only'}): not leading; rejoin it as a standby (pgfleet-keeper rejoin)`,
    );
    return;
  }

  let outcome = await renewOrConfirm(ctx, dcs, requestTimeoutMs);
  for (;;) {
    const v = judgeLeaderLease(
      { now: clock.now(), outcome, heldUntil: d.heldUntil, paused: s.paused },
      timing.leaderFenceBudgetMs,
    );
    if (v.kind === 'retry') {
      if (ctx.signal.aborted) return;
      ctx.record('wait', v.reason, {}, 'leader-retry');
      await clock.sleep(Math.min(RETRY_PAUSE_MS, v.budgetMs / 4), ctx.signal);
      const left = (d.fenceBy ?? clock.now()) - clock.now();
      outcome = await renewOrConfirm(ctx, dcs, Math.max(50, Math.min(requestTimeoutMs, left)));
      continue;
    }
    if (v.kind === 'fence') {
      d.heldUntil = null;
      d.fenceBy = null;
      await ctx.guard?.fence(v.reason);
      await publish(ctx, local);
      return;
    }
    if (v.kind === 'keep' && outcome.kind === 'held') {
      d.heldUntil = outcome.heldUntil;
      d.fenceBy = outcome.heldUntil - timing.leaderFenceBudgetMs;
    } else {
      d.heldUntil = null;
      d.fenceBy = null;
    }
    // Held through failsafe: etcd failed a moment ago, do not spend the evidence's freshness
    // on two more calls that will fail too.
    const failsafe = outcome.kind === 'held' && outcome.failsafe !== undefined;
    const snap = failsafe ? null : await publish(ctx, local);
    const guard = ctx.guard;
    if (guard) {
      const rival = snap?.members.find(
        (m) =>
          m.name !== c.node.name &&
          writingPrimary(m) &&
          (m.timeline === null || local.info.timeline === undefined || m.timeline >= local.info.timeline),
      );
      const accepting = await guard.checkAccepting(clock.now());
      if (!accepting) guard.revoke('the local postmaster takes no new connections');
      else if (rival) guard.revoke(`${rival.name} publishes itself as an unfenced primary too`);
      else
        guard.holdUntil(
          Math.min(
            evidenceSince + timing.leaseMs,
            v.kind === 'keep' ? v.writeUntil : Number.POSITIVE_INFINITY,
          ),
          v.reason,
        );
    }
    ctx.record(
      v.kind === 'keep' ? 'none' : 'wait',
      v.kind === 'keep' && !failsafe ? 'leading: leader key held' : v.reason,
      {},
      failsafe ? 'failsafe-held' : undefined,
    );
    if (v.kind === 'keep' && snap?.leader?.name === c.node.name) await manageSync(ctx, local, snap);
    return;
  }
}

/** Member key and cluster read, side by side; the snapshot (or null when etcd did not answer). */
async function publish(ctx: LoopContext, local: LocalFacts) {
  const dcs = requireDcs(ctx);
  const [, snap] = await Promise.all([
    dcsCall(ctx, 'publish member key', () =>
      dcs.touchMember(memberState(ctx, local), { signal: ctx.signal }),
    ),
    dcsCall(ctx, 'read cluster', () => dcs.readCluster({ signal: ctx.signal })),
  ]);
  if (!snap) return null;
  noteSnapshot(ctx, snap, false);
  if (local.info.role === 'primary' && !local.info.fenced && snap.leader?.name === ctx.config.node.name) {
    const names = snap.members.map((m) => m.name).join(',');
    if (names !== ctx.state.dcs.slotsFor) {
      try {
        await ensureSlots(ctx, snap);
        ctx.state.dcs.slotsFor = names;
      } catch (err) {
        ctx.logger.warn(
          { err: (err as Error).message },
          `could not create replication slots: ${(err as Error).message}`,
        );
      }
    }
    await keepFailsafeRecord(ctx, snap);
  }
  return snap;
}

/** The local primary is gone (its postmaster died, or the guard stopped it): let a standby lead now. */
export async function releaseLeadership(ctx: LoopContext, why: string): Promise<void> {
  const dcs = ctx.dcs;
  if (!dcs) return;
  const d = ctx.state.dcs;
  d.heldUntil = null;
  d.fenceBy = null;
  const released = await dcsCall(ctx, 'release leader key', () => dcs.releaseLeader({ signal: ctx.signal }));
  if (released) ctx.logger.warn({ event: 'leader_released' }, `released the leader key: ${why}`);
}
