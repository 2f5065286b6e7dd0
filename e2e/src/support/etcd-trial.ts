import type { EtcdCluster, SandboxNode } from '@pgfleet/sandbox';
import pg from 'pg';
import {
  type FailoverFacts,
  judgeFailover,
  type Name,
  streamingFrom,
  watchEveryNode,
} from './etcd-members.js';
import { startEtcdProcessCluster } from './etcd-processes.js';
import { until } from './until.js';
import type { WriteAttempt } from './write-ledger.js';
import type { WriteWatch } from './write-watch.js';

/**
 * One adversarial failover trial of issue 10, shared by the e2e suite and the bench: a fresh
 * primary `a` and standbys `b`, `c` on a real etcd, a keeper *process* beside each server (so
 * a whole host, server and keeper, can be frozen and thawed), a watcher writing on every
 * server directly every 50 ms. Then one fault, and what the ledgers and the keepers prove.
 */

export type EtcdFault = 'postmaster-kill' | 'host-freeze';

export const ETCD_FAULTS: Record<EtcdFault, string> = {
  'postmaster-kill': 'postmaster SIGKILL',
  'host-freeze': "primary's host (server + keeper) SIGSTOP ~4 s, then SIGCONT",
};

export interface EtcdTrialResult extends FailoverFacts {
  fault: EtcdFault;
  major: number;
  /** The standby that took over, and the other one. */
  leader: Name | null;
  follower: Name | null;
  /** Fault to the new primary's keeper deciding to promote (it won the leader key), ms. */
  promoteDecidedMs: number | null;
  /** The other standby streams from the new primary at the end. */
  followerFollows: boolean;
  /** The old primary's keeper at the end (null: it did not answer). */
  old: { role: string; fenced: boolean; writable: boolean } | null;
  /** A write sent to the old primary's server at the end: 'accepted', or why it was refused. */
  oldServerWrite: string;
  notes: string[];
  logs: Record<string, string[]>;
  attempts: WriteAttempt[];
}

export interface EtcdTrialOptions {
  /** PostgreSQL major (default: PGFLEET_PG_VERSION, else the newest found). */
  major?: number;
  /** Run the built keeper (apps/keeper/dist) instead of the sources. */
  dist?: boolean;
  echo?: boolean;
  /** cluster.syncCount: 1 (ANY 1 of the two standbys, the default) or 0 (asynchronous). */
  syncCount?: number;
}

const FREEZE_MS = 4000;
const SETTLE_MS = 2000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)));

/** One INSERT on a fresh session to `node`: 'accepted', or the SQLSTATE / error that refused it. */
async function tryWrite(node: SandboxNode): Promise<string> {
  const client = new pg.Client({ ...node.facts(), connectionTimeoutMillis: 2000, query_timeout: 3000 });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query("INSERT INTO ledger (writer, n) VALUES ('probe', 1)");
    return 'accepted';
  } catch (err) {
    const e = err as { code?: string; message?: string };
    return `${e.code ?? 'error'}: ${e.message ?? String(err)}`;
  } finally {
    await client.end().catch(() => {});
  }
}

/** When a keeper's log (pino JSON lines) first says it decided to promote. */
function promoteDecidedAt(lines: string[]): number | null {
  for (const l of lines)
    if (l.includes('"decision":"promote"')) return (JSON.parse(l) as { time: number }).time;
  return null;
}

/** The first write a standby acknowledged after the fault: which standby took over. */
function firstNewWriter(attempts: WriteAttempt[], faultAt: number): Name | null {
  const hit = attempts.find(
    (x) => x.ok && x.node !== 'a' && x.serverAt !== undefined && x.serverAt >= faultAt,
  );
  return (hit?.node as Name | undefined) ?? null;
}

export async function runEtcdTrial(
  etcd: EtcdCluster,
  fault: EtcdFault,
  opts: EtcdTrialOptions = {},
): Promise<EtcdTrialResult> {
  const name = `etcd-${fault}-${Date.now().toString(36)}`;
  const cl = await startEtcdProcessCluster(etcd, name, {
    ...(opts.major ? { major: opts.major } : {}),
    ...(opts.syncCount !== undefined ? { syncCount: opts.syncCount } : {}),
    keeper: { ...(opts.dist ? { dist: true } : {}), ...(opts.echo ? { echo: true } : {}) },
  });
  const { nodes, keepers: k, status } = cl;
  const a = nodes.a;
  const notes: string[] = [];
  let watch: WriteWatch | undefined;
  try {
    watch = watchEveryNode(nodes);
    await sleep(1000);

    const faultAt = Date.now();
    if (fault === 'postmaster-kill') await a.kill();
    else {
      a.pause();
      k.a.kill('SIGSTOP');
    }
    const w = watch;
    const leader = await until(
      'a write acknowledged by a standby',
      async () => firstNewWriter(w.attempts, faultAt),
      30_000,
    ).catch(() => null);
    if (fault === 'host-freeze') {
      await sleep(faultAt + FREEZE_MS - Date.now());
      // A frozen host comes back all at once.
      a.resume();
      k.a.kill('SIGCONT');
      notes.push(`thawed after ${Date.now() - faultAt} ms`);
    }
    const follower = leader ? (leader === 'b' ? 'c' : 'b') : null;
    const followerFollows =
      leader && follower
        ? await until(
            `${follower} streams from ${leader}`,
            async () => (await streamingFrom(nodes[leader])).has(follower),
            30_000,
          )
            .then(() => true)
            .catch(() => false)
        : false;
    if (follower && !followerFollows) notes.push(`${follower}'s server log:\n${nodes[follower].logTail(12)}`);
    // The thawed keeper must notice that it lost the leader key and fence its server.
    await until(
      'the old primary is not writable',
      async () => (await status('a'))?.writable === false,
      15_000,
    ).catch(() => notes.push('the old primary still holds its write lease'));
    await sleep(SETTLE_MS);
    const attempts = await watch.stop();
    watch = undefined;
    const sa = await status('a');
    const promoted: Name[] = [];
    for (const n of ['b', 'c'] as Name[])
      if (((await status(n))?.counters?.promotions ?? 0) > 0) promoted.push(n);
    const decidedAt = leader ? promoteDecidedAt(cl.logs[`k${leader}`] ?? []) : null;
    return {
      ...judgeFailover(attempts, 'a', promoted, faultAt),
      fault,
      major: cl.sb.major,
      leader,
      follower,
      promoteDecidedMs: decidedAt === null ? null : decidedAt - faultAt,
      followerFollows,
      old: sa ? { role: String(sa.role), fenced: Boolean(sa.fenced), writable: Boolean(sa.writable) } : null,
      oldServerWrite: await tryWrite(a),
      notes,
      logs: cl.logs,
      attempts,
    };
  } finally {
    await watch?.stop();
    a.resume();
    await cl.stop();
  }
}
