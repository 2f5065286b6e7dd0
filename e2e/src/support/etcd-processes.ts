import { type EtcdCluster, Sandbox } from '@pgfleet/sandbox';
import { etcdConfigs, NAMES, type Name, type Nodes, streamingFrom } from './etcd-members.js';
import {
  type KeeperProcess,
  type KeeperProcessOptions,
  keeperGet,
  startKeeperProcess,
} from './keeper-process.js';
import { until } from './until.js';
import { LEDGER_DDL } from './write-watch.js';

/**
 * A 3-node cluster on etcd with every keeper a child process, the way users run it: fresh
 * primary `a` and standbys `b`, `c` from the sandbox, healthy (a leads with its write lease,
 * both standbys stream from it, quorum commit on when asked). Used by the failover trial and
 * by the bench's idle footprint.
 */

export interface EtcdProcessClusterOptions {
  major?: number;
  /** cluster.syncCount: 1 (ANY 1 of the two standbys, the default) or 0 (asynchronous). */
  syncCount?: number;
  /** log.level of the keepers (default info). */
  logLevel?: string;
  keeper?: KeeperProcessOptions;
}

export type KeeperChild = KeeperProcess & { cleanup(): void };

export interface KeeperStatus {
  role?: string;
  writable?: boolean;
  fenced?: boolean;
  streaming?: boolean;
  counters?: { promotions: number };
}

export interface EtcdProcessCluster {
  sb: Sandbox;
  nodes: Nodes;
  keepers: Record<Name, KeeperChild>;
  /** Each keeper's log lines, by process name (ka, kb, kc). */
  logs: Record<string, string[]>;
  /** A keeper's /status; null when it does not answer. */
  status(n: Name): Promise<KeeperStatus | null>;
  stop(): Promise<void>;
}

const TOKEN = 'etcd-trial-token';

export async function startEtcdProcessCluster(
  etcd: EtcdCluster,
  name: string,
  opts: EtcdProcessClusterOptions = {},
): Promise<EtcdProcessCluster> {
  const sb = await Sandbox.create({ name, ...(opts.major ? { major: opts.major } : {}) });
  const keepers: Partial<Record<Name, KeeperChild>> = {};
  const logs: Record<string, string[]> = {};
  const stop = async () => {
    for (const k of Object.values(keepers)) k.kill('SIGCONT');
    for (const k of Object.values(keepers)) k.cleanup();
    await sb.destroy();
  };
  try {
    // The server default (the sandbox lowers it): promotion must not depend on it.
    const settings = { wal_retrieve_retry_interval: '5s' };
    const a = await sb.startNode('a', { settings });
    await a.query(LEDGER_DDL);
    const nodes: Nodes = {
      a,
      b: await sb.createStandby('b', a, { settings }),
      c: await sb.createStandby('c', a, { settings }),
    };
    const syncCount = opts.syncCount ?? 1;
    const raw = await etcdConfigs(etcd, name, nodes, TOKEN, {
      syncCount,
      pgdata: true,
      logLevel: opts.logLevel ?? 'info',
    });
    for (const n of NAMES) {
      keepers[n] = startKeeperProcess(`k${n}`, raw[n], opts.keeper ?? {});
      logs[`k${n}`] = keepers[n].log;
    }
    const k = keepers as Record<Name, KeeperChild>;
    const status = async (n: Name) => (await keeperGet(k[n].url, '/status'))?.body as KeeperStatus | null;
    await until('a leads with its write lease, b and c stream from it', async () => {
      const streaming = await streamingFrom(a);
      const sync =
        syncCount === 0 ||
        (await a.query<{ s: string }>("SELECT current_setting('synchronous_standby_names') AS s"))[0]?.s;
      return (await status('a'))?.writable && streaming.has('b') && streaming.has('c') && sync;
    });
    return { sb, nodes, keepers: k, logs, status, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
