import { type EtcdCluster, findEtcd, freePort, type SandboxNode } from '@pgfleet/sandbox';
import { twoWriterMoments, type WriteAttempt } from './write-ledger.js';
import { startWriteWatch, type WriteWatch } from './write-watch.js';

/**
 * Issue 10's three-node cluster on etcd, the parts shared by the in-process e2e fixture
 * (keeper/etcd-fixture.ts) and the child-process trial (etcd-trial.ts): the members' keeper
 * configs, the direct write watchers on every server, and how a failover is judged.
 */

export const NAMES = ['a', 'b', 'c'] as const;
export type Name = (typeof NAMES)[number];
export type Nodes = Record<Name, SandboxNode>;

export interface EtcdKeeperTiming {
  intervalMs: number;
  connectTimeoutMs: number;
  ttlSeconds: number;
}

export const TIMING: EtcdKeeperTiming = { intervalMs: 500, connectTimeoutMs: 400, ttlSeconds: 3 };

/** What a scenario changes in the three keepers' configs; defaults: TIMING, asynchronous, no tags. */
export interface EtcdClusterOptions {
  timing?: EtcdKeeperTiming;
  /** cluster.syncCount for every keeper (quorum commit). */
  syncCount?: number;
  /** Per-node tags (noFailover, failoverPriority). */
  tags?: Partial<Record<Name, Record<string, unknown>>>;
  /** cluster.failsafeMode for every keeper. */
  failsafeMode?: boolean;
  /** node.pgdata for every keeper (its guard can then stop its server hard). */
  pgdata?: boolean;
  /** log.level (default debug). */
  logLevel?: string;
}

/**
 * Raw keeper configs: every member listed with its direct conninfo (probes, follow), each
 * keeper reaching etcd through its own proxies (so `etcd.partition('keeper-a')` cuts a alone).
 */
export async function etcdConfigs(
  etcd: EtcdCluster,
  cluster: string,
  nodes: Nodes,
  token: string,
  opts: EtcdClusterOptions = {},
) {
  const t = opts.timing ?? TIMING;
  const ports = { a: await freePort(), b: await freePort(), c: await freePort() };
  const members = NAMES.map((n) => ({
    name: n,
    conninfo: nodes[n].conninfo(),
    keeperUrl: `http://127.0.0.1:${ports[n]}`,
  }));
  const one = (n: Name) => ({
    node: {
      name: n,
      conninfo: nodes[n].conninfo(),
      ...(opts.pgdata ? { pgdata: nodes[n].dataDir } : {}),
    },
    interval: `${t.intervalMs}ms`,
    failures: 3,
    connectTimeout: `${t.connectTimeoutMs}ms`,
    dcs: { etcd: { endpoints: etcd.endpoints({ from: `keeper-${n}` }), ttl: `${t.ttlSeconds}s` } },
    cluster: {
      name: cluster,
      members,
      syncCount: opts.syncCount ?? 0,
      ...(opts.failsafeMode ? { failsafeMode: true } : {}),
    },
    ...(opts.tags?.[n] ? { tags: opts.tags[n] } : {}),
    http: { listen: `127.0.0.1:${ports[n]}`, token },
    log: { level: opts.logLevel ?? 'debug' },
  });
  return { a: one('a'), b: one('b'), c: one('c') };
}

/** Whether Debian's etcd is installed: the etcd scenarios are skipped where it is not. */
export function etcdAvailable(): boolean {
  try {
    findEtcd();
    return true;
  } catch {
    return false;
  }
}

/** The names of the standbys streaming from `node` now. */
export async function streamingFrom(node: Pick<SandboxNode, 'query'>): Promise<Set<string>> {
  const rows = await node.query<{ application_name: string }>(
    "SELECT application_name FROM pg_stat_replication WHERE state = 'streaming'",
  );
  return new Set(rows.map((r) => r.application_name));
}

/** A direct watcher on every server, one write every 50 ms on a held session. */
export function watchEveryNode(nodes: Nodes): WriteWatch {
  const nodeByPort = Object.fromEntries(NAMES.map((n) => [nodes[n].port, n]));
  return startWriteWatch(
    NAMES.map((n) => ({ ...nodes[n].facts(), writer: n, port: nodes[n].port, connectTimeoutMs: 300 })),
    { nodeByPort, writeTimeoutMs: 3000 },
  );
}

export interface FailoverFacts {
  promoted: Name[];
  twoWriters: ReturnType<typeof twoWriterMoments>;
  /** Server time of the old primary's last acknowledged write, and the new one's first. */
  lastOldAt: number | null;
  firstNewAt: number | null;
  /** Fault to the first write acknowledged by the new primary (ms). */
  ttfwMs: number | null;
  /** Writes the old primary acknowledged at or after the new primary's first (server time). */
  oldAfterNew: number;
  acked: number;
}

export function judgeFailover(
  attempts: WriteAttempt[],
  old: Name,
  promoted: Name[],
  faultAt: number,
): FailoverFacts {
  const acked = attempts.filter((x) => x.ok && x.serverAt !== undefined);
  const at = (n: string) => acked.filter((x) => x.node === n).map((x) => x.serverAt!);
  const oldAt = at(old);
  const newAt = promoted.length === 1 ? at(promoted[0]!) : [];
  const firstNewAt = newAt.length ? Math.min(...newAt) : null;
  return {
    promoted,
    twoWriters: twoWriterMoments(attempts),
    lastOldAt: oldAt.length ? Math.max(...oldAt) : null,
    firstNewAt,
    ttfwMs: firstNewAt === null ? null : Math.round(firstNewAt - faultAt),
    oldAfterNew: firstNewAt === null ? 0 : oldAt.filter((t) => t >= firstNewAt).length,
    acked: acked.length,
  };
}
