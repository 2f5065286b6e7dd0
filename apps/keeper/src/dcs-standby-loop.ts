import { detectRoleOn, replayStatus } from '@pgfleet/roles';
import { type CandidateFacts, selectCandidate } from './candidate-decision.js';
import { errorText, type LoopContext } from './context.js';
import type { ClusterSnapshot, Handover, MemberRecord } from './dcs/index.js';
import { dcsCall, followLeader, memberState, noteSnapshot, requireDcs } from './dcs-node.js';
import { wantedSyncCount } from './dcs-sync.js';
import { failsafeBlocksClaim } from './failsafe-decision.js';
import type { LocalFacts } from './local-facts.js';
import { withSession } from './session.js';
import { promoteLocal } from './standby-loop.js';
import { keeperTiming } from './timing.js';

/**
 * Standby mode on etcd, one iteration: publish the member key, read the cluster. While a
 * member holds the leader key, follow it. When nobody does (its keeper released it, or its
 * lease ran out: either way the old primary stopped taking writes, see
 * leader-lease-decision.ts), rank the candidates (candidate-decision.ts) with fresh facts and,
 * if this node ranks first, race for the key in one etcd transaction; promote only on a win.
 */

export async function dcsStandbyIteration(ctx: LoopContext, local: LocalFacts): Promise<void> {
  const { config: c, state: s } = ctx;
  const dcs = requireDcs(ctx);
  const d = s.dcs;
  d.heldUntil = null;
  d.fenceBy = null;
  d.syncSince = null;
  d.lastGoodAt = {};
  d.lastReplyAt = {};
  const replay = local.standby?.replay ?? null;
  s.replayPaused = replay?.replayPaused ?? false;
  s.replicaStreaming = local.standby?.receiver?.status === 'streaming';
  s.lagBytes = replay ? replay.lagBytes : null;
  const leaderLsn = d.leader?.walLsn ?? null;
  const replayed = replay?.replayLsn ?? null;
  // What it would lack if promoted now: behind its own receive position, or behind the
  // leader's last published one, whichever is more.
  const behindLeader =
    leaderLsn !== null && replayed !== null && leaderLsn > replayed ? leaderLsn - replayed : 0n;
  if (s.lagBytes !== null && behindLeader > s.lagBytes) s.lagBytes = behindLeader;

  const [, snap] = await Promise.all([
    dcsCall(ctx, 'publish member key', () =>
      dcs.touchMember(memberState(ctx, local), { signal: ctx.signal }),
    ),
    dcsCall(ctx, 'read cluster', () => dcs.readCluster({ signal: ctx.signal })),
  ]);
  if (!snap) {
    ctx.record(
      'wait',
      'etcd unreachable: a standby promotes only after winning the leader key',
      {},
      'dcs-down',
    );
    return;
  }
  noteSnapshot(ctx, snap, s.replicaStreaming);

  const leader = snap.leader;
  if (leader) {
    if (leader.name === c.node.name) {
      // A leader key naming this standby: an acquire whose answer was lost landed after all,
      // or a promotion failed. Holding it would keep every other member from taking over.
      await dcsCall(ctx, 'release leader key', () => dcs.releaseLeader({ signal: ctx.signal }));
      ctx.record('wait', 'released a leader key naming this standby (its server is not a primary)');
      return;
    }
    const rec = snap.members.find((m) => m.name === leader.name);
    // Synchronous when the leader's promise counts this standby among its voters.
    const promise = snap.sync;
    s.sync =
      promise && promise.leader === leader.name && promise.minAcks > 0
        ? promise.voters.some((v) => v.toLowerCase() === c.node.name.toLowerCase())
          ? 'sync'
          : 'async'
        : promise && promise.leader === leader.name
          ? 'degraded'
          : 'unknown';
    try {
      await followLeader(ctx, leader.name, rec);
    } catch (err) {
      ctx.logger.warn({ err: errorText(err) }, `could not follow ${leader.name}: ${errorText(err)}`);
    }
    ctx.record('wait', `following ${leader.name}, the leader`, {}, `follow:${leader.name}`);
    return;
  }

  const former = d.leader;
  if (!former) {
    ctx.record(
      'wait',
      'no leader key, and none seen since this keeper started: not promoting (start the primary keeper first)',
      {},
      'never-led',
    );
    return;
  }
  const handover = activeHandover(snap, former.name, ctx.clock.now());
  // A pause stops automatic failover; an operator's handover goes ahead (Patroni does the same).
  if (s.paused && !handover) {
    ctx.record('wait', 'no leader, but the cluster is paused by the operator: not promoting', {}, 'paused');
    return;
  }
  const failsafeBlock = () =>
    failsafeBlocksClaim({
      self: c.node.name,
      now: ctx.clock.now(),
      promise: d.failsafePromise,
      record: snap.failsafe,
      startedAt: s.startedAt,
      ttlMs: (c.dcs?.etcd.ttlSeconds ?? 0) * 1000,
    });
  const promised = failsafeBlock();
  if (promised) {
    ctx.record('wait', `leader ${former.name} gone, not promoting: ${promised}`, {}, 'failsafe-promise');
    return;
  }
  const members = await candidateFacts(ctx, snap, local);
  const decision = selectCandidate({
    members,
    formerLeader: former.name,
    lastPrimaryLsn: former.walLsn,
    clusterTimeline: former.timeline,
    // Quorum commit configured, or a promise of the old leader still stands: check it.
    synchronous: wantedSyncCount(ctx, snap) > 0 || (snap.sync !== null && snap.sync.minAcks > 0),
    sync: snap.sync,
    maxLagOnFailover: c.maxLagOnFailover,
    ...(handover ? { requested: { name: handover.to, force: handover.force } } : {}),
  });
  if (decision.best !== c.node.name) {
    ctx.record(
      decision.best ? 'wait' : 'blocked',
      decision.best
        ? `leader ${former.name} gone: ${decision.best} is the best candidate (${decision.reason})`
        : `leader ${former.name} gone, not promoting: ${decision.reason}`,
      { excluded: decision.excluded },
      `candidate:${decision.best ?? decision.reason}`,
    );
    return;
  }
  // Checked and claimed with no await in between: a failsafe request answered after this
  // point is refused (failsafe.ts), one answered before it blocks the claim.
  const blocked = failsafeBlock();
  if (blocked) {
    ctx.record('wait', `leader ${former.name} gone, not promoting: ${blocked}`, {}, 'failsafe-promise');
    return;
  }
  d.claiming = true;
  try {
    await claimAndPromote(ctx, local, snap, former, handover, decision.reason);
  } finally {
    d.claiming = false;
  }
}

/** Races for the leader key; promotes the local server only on a win (and appends the history). */
async function claimAndPromote(
  ctx: LoopContext,
  local: LocalFacts,
  snap: ClusterSnapshot,
  former: { name: string },
  handover: Handover | null,
  why: string,
): Promise<void> {
  const { config: c, state: s } = ctx;
  const dcs = requireDcs(ctx);
  const d = s.dcs;
  const attempt = await dcsCall(ctx, 'acquire leader key', () =>
    dcs.acquireLeader({ signal: ctx.signal, expectSyncRevision: snap.syncRevision }),
  );
  if (!attempt) return;
  if (!attempt.won) {
    ctx.record(
      'wait',
      attempt.reason === 'held'
        ? `${attempt.holder ?? 'another member'} won the leader key first`
        : 'the sync promise changed under the decision: deciding again',
    );
    ctx.wake();
    return;
  }
  const reason = handover
    ? `promoting: ${handover.kind} from ${former.name} to ${c.node.name} requested by the operator, won the leader key; ${why}`
    : `promoting: leader ${former.name} gone, won the leader key; ${why}`;
  ctx.record('promote', reason);
  const switchLsn = local.info.lsn ?? null;
  await promoteLocal(ctx, reason);
  if ((s.role as string) !== 'primary') {
    await dcsCall(ctx, 'release leader key', () => dcs.releaseLeader({ signal: ctx.signal }));
    return;
  }
  const timing = keeperTiming(c);
  d.heldUntil = attempt.heldUntil;
  d.fenceBy = attempt.heldUntil - timing.leaderFenceBudgetMs;
  ctx.guard?.holdUntil(
    Math.min(ctx.clock.now() + timing.leaseMs, attempt.heldUntil - timing.leaderFenceBudgetMs),
    reason,
  );
  void dcsCall(ctx, 'append history', () =>
    dcs.appendHistory(
      {
        timeline: s.timeline ?? 0,
        switchLsn,
        reason: handover
          ? `${handover.kind} from ${former.name} to ${c.node.name} (operator)${handover.force ? ', forced' : ''}; ${why}`
          : `failover: ${former.name} gone; ${why}`,
        at: new Date().toISOString(),
        leader: c.node.name,
        previousLeader: former.name,
      },
      { signal: ctx.signal },
    ),
  );
}

/**
 * Every member's facts for the ranking, fresh: this node's from its own server; each member
 * listed with a conninfo under cluster.members straight from its server (which also catches
 * an old primary whose keeper died while it kept running: a reachable primary stops every
 * failover); the rest from their member keys (a key exists only while its keeper's session
 * lives, so it counts as reachable).
 */
async function candidateFacts(
  ctx: LoopContext,
  snap: ClusterSnapshot,
  local: LocalFacts,
): Promise<CandidateFacts[]> {
  const { config: c, state: s } = ctx;
  const streamed = new Set(s.dcs.streamedUnderLeader);
  const self: CandidateFacts = {
    name: c.node.name,
    reachable: true,
    role: 'standby',
    timeline: local.info.timeline ?? null,
    receivedLsn: local.standby?.replay.receiveLsn ?? null,
    replayedLsn: local.standby?.replay.replayLsn ?? null,
    streamingAtFailure: streamed.has(c.node.name),
    tags: c.tags,
  };
  return [self, ...(await otherMembersFacts(ctx, snap))];
}

/** An operator's handover from `former` that still runs (null: none, or it timed out). */
export function activeHandover(snap: ClusterSnapshot, former: string, now: number): Handover | null {
  const h = snap.config.handover;
  if (!h || h.from !== former) return null;
  const until = Date.parse(h.until);
  return Number.isFinite(until) && until > now ? h : null;
}

/** Every member but this one, with the freshest facts available (see candidateFacts). */
export async function otherMembersFacts(ctx: LoopContext, snap: ClusterSnapshot): Promise<CandidateFacts[]> {
  const { config: c, state: s } = ctx;
  const streamed = new Set(s.dcs.streamedUnderLeader);
  const names = new Set<string>([
    ...snap.members.map((m) => m.name),
    ...c.cluster.members.filter((m) => m.conninfo).map((m) => m.name),
  ]);
  names.delete(c.node.name);
  return Promise.all(
    [...names].map(async (name): Promise<CandidateFacts> => {
      const rec = snap.members.find((m) => m.name === name);
      const conninfo = c.cluster.members.find((m) => m.name === name)?.conninfo;
      const base = fromRecord(name, rec, streamed.has(name));
      if (!conninfo) return base;
      try {
        return await withSession(
          conninfo,
          { timeoutMs: c.connectTimeoutMs, node: name, action: 'probe', signal: ctx.signal },
          async (q) => {
            const info = await detectRoleOn(q);
            const r = info.role === 'standby' ? await replayStatus(q) : null;
            return {
              ...base,
              reachable: true,
              role: info.role === 'primary' && info.fenced ? 'down' : info.role,
              timeline: info.timeline ?? null,
              receivedLsn: r?.receiveLsn ?? null,
              replayedLsn: r?.replayLsn ?? null,
            };
          },
        );
      } catch {
        return { ...base, reachable: false, role: 'down' };
      }
    }),
  );
}

function fromRecord(name: string, rec: MemberRecord | undefined, streamed: boolean): CandidateFacts {
  return {
    name,
    reachable: rec !== undefined,
    // A fenced primary takes no writes: it does not stand in the way of a failover.
    role: !rec ? 'unknown' : rec.role === 'primary' && rec.fenced ? 'down' : rec.role,
    timeline: rec?.timeline ?? null,
    receivedLsn: rec?.receivedLsn ?? null,
    replayedLsn: rec?.replayedLsn ?? null,
    streamingAtFailure: streamed,
    tags: rec?.tags ?? { noFailover: false, failoverPriority: 1 },
  };
}
