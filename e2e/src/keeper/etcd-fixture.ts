import { type EtcdCluster, findEtcd, freePort, Sandbox, type SandboxNode } from '@pgfleet/sandbox';
import { twoWriterMoments, type WriteAttempt } from '../support/write-ledger.js';
import { LEDGER_DDL, startWriteWatch, type WriteWatch } from '../support/write-watch.js';
import { type RunningKeeper, startInProcess, TOKEN, until } from './fixture.js';

/**
 * Issue 10: a keeper cluster on etcd. One primary `a` and standbys `b` and `c` from the
 * sandbox, a keeper per node (in-process) reaching etcd through its own proxies (so that
 * `etcd.partition('keeper-a')` cuts a's keeper off etcd alone), and adversarial watchers
 * writing on every server directly every 50 ms.
 */

export const NAMES = ['a', 'b', 'c'] as const;
export type Name = (typeof NAMES)[number];

export interface EtcdKeeperTiming {
  intervalMs: number;
  connectTimeoutMs: number;
  ttlSeconds: number;
}

export const TIMING: EtcdKeeperTiming = { intervalMs: 500, connectTimeoutMs: 400, ttlSeconds: 3 };

export interface EtcdCluster3 {
  sb: Sandbox;
  nodes: Record<Name, SandboxNode>;
  keepers: Record<Name, RunningKeeper>;
  /** The keepers' raw configs (for the CLI). */
  raw: Record<Name, Record<string, unknown>>;
  watch: WriteWatch;
  stop(): Promise<void>;
}

/** What a scenario changes in the three keepers' configs; defaults: TIMING, asynchronous, no tags. */
export interface EtcdClusterOptions {
  timing?: EtcdKeeperTiming;
  /** cluster.syncCount for every keeper (quorum commit). */
  syncCount?: number;
  /** Per-node tags (noFailover, failoverPriority). */
  tags?: Partial<Record<Name, Record<string, unknown>>>;
  /** cluster.failsafeMode for every keeper. */
  failsafeMode?: boolean;
}

/** Raw keeper configs: every member listed with its direct conninfo (probes, follow). */
export async function etcdConfigs(
  etcd: EtcdCluster,
  cluster: string,
  nodes: Record<Name, SandboxNode>,
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
    node: { name: n, conninfo: nodes[n].conninfo() },
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
    http: { listen: `127.0.0.1:${ports[n]}`, token: TOKEN },
    log: { level: 'debug' },
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

/**
 * Starts the three servers, their keepers, and waits until `a` leads with its write lease and
 * both standbys stream from it; then starts the watchers.
 */
export async function startEtcdCluster3(
  etcd: EtcdCluster,
  cluster: string,
  opts: EtcdClusterOptions = {},
): Promise<EtcdCluster3> {
  const sb = await Sandbox.create({ name: cluster });
  const keepers: Partial<Record<Name, RunningKeeper>> = {};
  let watch: WriteWatch | undefined;
  const stop = async () => {
    await watch?.stop();
    await Promise.all(Object.values(keepers).map((k) => k?.handle.stop()));
    await sb.destroy();
  };
  try {
    const a = await sb.startNode('a');
    await a.query(LEDGER_DDL);
    const b = await sb.createStandby('b', a);
    const c = await sb.createStandby('c', a);
    const nodes = { a, b, c };
    const raw = await etcdConfigs(etcd, cluster, nodes, opts);
    for (const n of NAMES) keepers[n] = await startInProcess(n, raw[n]);
    const k = keepers as Record<Name, RunningKeeper>;
    await until('a leads with its write lease', () => k.a.handle.status().writable, 30_000);
    await until(
      'b and c stream from a',
      async () => {
        const rows = await a.query<{ application_name: string }>(
          "SELECT application_name FROM pg_stat_replication WHERE state = 'streaming'",
        );
        const streaming = new Set(rows.map((r) => r.application_name));
        return (
          streaming.has('b') &&
          streaming.has('c') &&
          k.b.handle.status().decision?.reason.startsWith('following a') &&
          k.c.handle.status().decision?.reason.startsWith('following a')
        );
      },
      30_000,
    );
    const nodeByPort = Object.fromEntries(NAMES.map((n) => [nodes[n].port, n]));
    watch = startWriteWatch(
      NAMES.map((n) => ({ ...nodes[n].facts(), writer: n, port: nodes[n].port, connectTimeoutMs: 300 })),
      { nodeByPort, writeTimeoutMs: 3000 },
    );
    return { sb, nodes, keepers: k, raw, watch, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

export interface FailoverFacts {
  promoted: Name[];
  twoWriters: ReturnType<typeof twoWriterMoments>;
  /** Server time of the old primary's last acknowledged write, and the new one's first. */
  lastOldAt: number | null;
  firstNewAt: number | null;
  /** Fault to the first write acknowledged by the new primary (ms). */
  ttfwMs: number | null;
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
    acked: acked.length,
  };
}
