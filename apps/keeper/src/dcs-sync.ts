import {
  NO_SYNC_STANDBYS,
  parseSyncStandbyNames,
  type SyncStandbySpec,
  setSyncStandbyNames,
} from '@pgfleet/roles';
import { type Lsn, parseLsn } from '@pgfleet/wal';
import { errorText, type LoopContext } from './context.js';
import type { ClusterSnapshot } from './dcs/index.js';
import { requireDcs } from './dcs-node.js';
import type { LocalFacts } from './local-facts.js';
import { planSyncStandbys, type SyncStandbyFacts } from './sync-decision.js';

/**
 * Quorum commit on an etcd cluster, primary side: each iteration the leader gathers its
 * standbys' health from pg_stat_replication, asks planSyncStandbys (sync-decision.ts) for the
 * steps, and carries them out in order, stopping at the first that fails: the promise in etcd
 * (the `sync` key, what a failover checks candidates against) is widened before
 * synchronous_standby_names changes and tightened only once the new setting is confirmed.
 */

/** n of `ANY n`: the cluster-wide config key wins over the local configuration. */
export function wantedSyncCount(ctx: LoopContext, snap: ClusterSnapshot | null): number {
  return snap?.config.syncCount ?? ctx.config.cluster.syncCount;
}

/**
 * A standby is healthy while it streams and replies (reply_time advancing, or nothing left to
 * confirm), and for failures × interval after it last did: the degrade grace.
 */
function standbyFacts(ctx: LoopContext, local: LocalFacts, snap: ClusterSnapshot): SyncStandbyFacts[] {
  const { config: c, state: s } = ctx;
  const d = s.dcs;
  const now = ctx.clock.now();
  const rows = local.primary?.streams ?? [];
  const primaryLsn = local.info.lsn ?? null;
  const names = new Set<string>(
    [...snap.members.map((m) => m.name), ...rows.map((r) => r.applicationName)].filter(
      (n) => n !== '' && n !== c.node.name,
    ),
  );
  const graceMs = c.failures * c.intervalMs;
  const facts: SyncStandbyFacts[] = [];
  for (const name of [...names].sort()) {
    const row = rows.find((r) => r.applicationName === name && r.state === 'streaming');
    const reply = row?.replyTime?.getTime() ?? null;
    const replying =
      row !== undefined &&
      ((reply !== null && reply !== d.lastReplyAt[name]) ||
        (row.flushLsn !== null && primaryLsn !== null && row.flushLsn >= primaryLsn));
    if (reply !== null) d.lastReplyAt[name] = reply;
    if (replying) d.lastGoodAt[name] = now;
    const good = d.lastGoodAt[name];
    const flush = row?.flushLsn ?? null;
    facts.push({
      name,
      healthy: good !== undefined && now - good < graceMs,
      caughtUp:
        row !== undefined &&
        flush !== null &&
        primaryLsn !== null &&
        (primaryLsn > flush ? primaryLsn - flush : 0n) <= BigInt(c.syncRestoreLag),
      flushLsn: flush,
    });
  }
  return facts;
}

function currentSpec(ctx: LoopContext, value: string): SyncStandbySpec {
  try {
    return parseSyncStandbyNames(value);
  } catch (err) {
    // Not ours (someone edited it by hand): treat as nothing promised, the plan replaces it.
    ctx.logger.warn(
      { err: errorText(err) },
      `synchronous_standby_names ${JSON.stringify(value)} does not parse`,
    );
    return { ...NO_SYNC_STANDBYS, names: [] };
  }
}

async function currentLsn(ctx: LoopContext): Promise<Lsn | null> {
  const session = ctx.session;
  if (!session) return null;
  return session.run('wal position', async (q) => {
    const { rows } = await q.query('SELECT pg_current_wal_lsn()::text AS lsn');
    return rows[0]?.lsn ? parseLsn(String(rows[0].lsn)) : null;
  });
}

export async function manageSync(ctx: LoopContext, local: LocalFacts, snap: ClusterSnapshot): Promise<void> {
  const { config: c, state: s } = ctx;
  const d = s.dcs;
  const current = local.primary?.syncNames ?? null;
  if (current === null) return;
  s.currentSyncNames = current;
  const wanted = wantedSyncCount(ctx, snap);
  // An asynchronous cluster that never promised anything has nothing to manage.
  if (wanted === 0 && current.trim() === '' && (snap.sync === null || snap.sync.minAcks === 0)) return;
  if (s.paused) return;
  // The setting has been in effect at least since now: a conservative start for confirmation.
  if (d.syncSince === null) d.syncSince = local.info.lsn ?? null;
  const plan = planSyncStandbys({
    leader: c.node.name,
    wanted,
    standbys: standbyFacts(ctx, local, snap),
    current: currentSpec(ctx, current),
    record: snap.sync,
    currentSince: d.syncSince,
  });
  s.degraded = plan.degraded;
  ctx.metrics.syncDegraded.set(plan.degraded ? 1 : 0);
  const dcs = requireDcs(ctx);
  for (const step of plan.steps) {
    if (step.kind === 'write-record') {
      const ok = await dcs.writeSync(step.record, { signal: ctx.signal }).catch((err) => {
        ctx.logger.warn({ err: errorText(err) }, `could not write the sync promise: ${errorText(err)}`);
        return false;
      });
      if (!ok) return;
      ctx.logger.info(
        { event: 'sync_promise', voters: step.record.voters, minAcks: step.record.minAcks },
        `sync promise: every acknowledged commit is on ${step.record.minAcks} of [${step.record.voters.join(', ')}] (${step.reason})`,
      );
      continue;
    }
    const session = ctx.session;
    if (!session) return;
    try {
      await session.run('synchronous_standby_names', (q) =>
        setSyncStandbyNames(q, step.value, { timeoutMs: 5000, node: c.node.name }),
      );
      d.syncSince = await currentLsn(ctx);
    } catch (err) {
      ctx.logger.error({ err: errorText(err) }, `could not set synchronous_standby_names: ${errorText(err)}`);
      return;
    }
    s.currentSyncNames = step.value;
    const degrade = step.reason.includes('degrade');
    if (degrade) {
      s.counters.degrades++;
      ctx.metrics.degrades.inc();
    }
    if (step.reason.includes('restore')) {
      s.counters.restores++;
      ctx.metrics.restores.inc();
    }
    ctx.logger.warn(
      { event: 'sync_standby_names', value: step.value },
      `synchronous_standby_names = ${JSON.stringify(step.value)}: ${step.reason}`,
    );
    ctx.hook(degrade ? 'degrade' : 'restore', step.reason);
  }
}
