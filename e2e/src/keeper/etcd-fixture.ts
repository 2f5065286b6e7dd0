import { type EtcdCluster, Sandbox, type SandboxNode } from '@pgfleet/sandbox';
import {
  type EtcdClusterOptions,
  etcdConfigs,
  NAMES,
  type Name,
  streamingFrom,
  watchEveryNode,
} from '../support/etcd-members.js';
import { LEDGER_DDL, type WriteWatch } from '../support/write-watch.js';
import { type RunningKeeper, startInProcess, TOKEN, until } from './fixture.js';

export {
  type EtcdClusterOptions,
  type EtcdKeeperTiming,
  etcdAvailable,
  type FailoverFacts,
  judgeFailover,
  NAMES,
  type Name,
  TIMING,
} from '../support/etcd-members.js';

/**
 * Issue 10: a keeper cluster on etcd. One primary `a` and standbys `b` and `c` from the
 * sandbox, a keeper per node (in-process) reaching etcd through its own proxies (so that
 * `etcd.partition('keeper-a')` cuts a's keeper off etcd alone), and adversarial watchers
 * writing on every server directly every 50 ms. The configs, watchers and judgement are shared
 * with the child-process trial (support/etcd-members.ts).
 */

export interface EtcdCluster3 {
  sb: Sandbox;
  nodes: Record<Name, SandboxNode>;
  keepers: Record<Name, RunningKeeper>;
  /** The keepers' raw configs (for the CLI). */
  raw: Record<Name, Record<string, unknown>>;
  watch: WriteWatch;
  stop(): Promise<void>;
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
    const raw = await etcdConfigs(etcd, cluster, nodes, TOKEN, opts);
    for (const n of NAMES) keepers[n] = await startInProcess(n, raw[n]);
    const k = keepers as Record<Name, RunningKeeper>;
    await until('a leads with its write lease', () => k.a.handle.status().writable, 30_000);
    await until(
      'b and c stream from a',
      async () => {
        const streaming = await streamingFrom(a);
        return (
          streaming.has('b') &&
          streaming.has('c') &&
          k.b.handle.status().decision?.reason.startsWith('following a') &&
          k.c.handle.status().decision?.reason.startsWith('following a')
        );
      },
      30_000,
    );
    watch = watchEveryNode(nodes);
    return { sb, nodes, keepers: k, raw, watch, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
