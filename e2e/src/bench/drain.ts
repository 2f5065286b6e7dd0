import { initMesh, startReplicator } from '@pgfleet/multimaster';
import type { SandboxNode } from '@pgfleet/sandbox';
import {
  backendCpuSeconds,
  benchChoice,
  benchLogger,
  benchMeshConfig,
  nativeApplyWorkerCpuSeconds,
  teardownPgfleet,
  waitForOriginPast,
} from './pgfleet-drain.js';
import { commitMarker, type DrainWorkload, MARKER_TABLE, setupMarker, tableDigest } from './workload.js';

export interface WorkloadDrain {
  system: 'native' | 'pgfleet';
  seconds: number;
  transactions: number;
  changes: number;
  /** Tables whose rows differ between source and target after the drain (empty: converged). */
  differing: string[];
  /**
   * CPU seconds of this process (the replicator; 0 for native), the apply backend (native:
   * the apply worker) and the walsender, over the drain.
   */
  cpu?: { replicator: number; applyBackend: number | null; walsender: number | null };
  conflicts?: number;
}

async function prepare(nodes: SandboxNode[], w: DrainWorkload): Promise<void> {
  for (const n of nodes) {
    await w.setup(n);
    await setupMarker(n);
  }
}

/** Tables whose rows differ between the two nodes. */
async function differing(source: SandboxNode, target: SandboxNode, w: DrainWorkload): Promise<string[]> {
  const out: string[] = [];
  for (const t of w.compare ?? w.tables)
    if ((await tableDigest(source, t)) !== (await tableDigest(target, t))) out.push(t);
  return out;
}

/**
 * PostgreSQL's own logical replication: publication on the source, a disabled subscription
 * (copy_data = false: the tables were loaded on both nodes) on the target, the backlog, then
 * the subscription enabled and timed until its origin is past the marker.
 */
export async function drainNativeWorkload(
  source: SandboxNode,
  target: SandboxNode,
  w: DrainWorkload,
): Promise<WorkloadDrain> {
  await prepare([source, target], w);
  const tables = [...w.tables, MARKER_TABLE].join(', ');
  await source.query(`CREATE PUBLICATION bench_pub FOR TABLE ${tables}`);
  const conn = source.conninfo().replaceAll("'", "''");
  // Native runs at its defaults; BENCH_NATIVE_STREAMING (off, on, parallel on 16+) sets its `streaming`.
  const streaming = benchChoice('BENCH_NATIVE_STREAMING', ['off', 'on', 'parallel'] as const);
  await target.query(
    `CREATE SUBSCRIPTION bench_sub CONNECTION '${conn}' PUBLICATION bench_pub
       WITH (copy_data = false, enabled = false, create_slot = true, slot_name = 'bench_sub'${streaming ? `, streaming = ${streaming}` : ''})`,
  );
  try {
    const [sub] = await target.query<{ oid: number }>(
      `SELECT oid FROM pg_subscription WHERE subname = 'bench_sub'`,
    );
    await w.writeOnTarget?.(target);
    const written = await w.writeBacklog(source);
    const marker = await commitMarker(source);
    const t0 = performance.now();
    await target.query('ALTER SUBSCRIPTION bench_sub ENABLE');
    await waitForOriginPast(target, `pg_${sub?.oid}`, marker, 900_000);
    const seconds = (performance.now() - t0) / 1000;
    const cpu = {
      replicator: 0,
      applyBackend: await nativeApplyWorkerCpuSeconds(target),
      walsender: await backendCpuSeconds(source, 'bench_sub'),
    };
    return { system: 'native', seconds, ...written, differing: await differing(source, target, w), cpu };
  } finally {
    await target.query('ALTER SUBSCRIPTION bench_sub DISABLE');
    await target.query('ALTER SUBSCRIPTION bench_sub SET (slot_name = NONE)');
    await target.query('DROP SUBSCRIPTION bench_sub');
    await source.query(`SELECT pg_drop_replication_slot('bench_sub')`);
    await source.query('DROP PUBLICATION bench_pub');
  }
}

/**
 * pgfleet draining the same backlog: a fresh 2-node mesh (init after the tables were
 * loaded on both nodes), the backlog written while no replicator runs, then the edge
 * source→target started in this process and timed until the target's origin is past the
 * marker.
 */
export async function drainPgfleetWorkload(
  source: SandboxNode,
  target: SandboxNode,
  w: DrainWorkload,
): Promise<WorkloadDrain> {
  const nodes = [source, target];
  await teardownPgfleet(nodes);
  await prepare(nodes, w);
  const config = benchMeshConfig(nodes, [...w.tables, MARKER_TABLE]);
  await initMesh(config, { logger: benchLogger });
  try {
    await w.writeOnTarget?.(target);
    const written = await w.writeBacklog(source);
    const marker = await commitMarker(source);
    const edge = `${source.name}_${target.name}`;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const rep = startReplicator(config, { logger: benchLogger, edges: [edge] });
    let seconds: number;
    let cpu: WorkloadDrain['cpu'];
    try {
      await waitForOriginPast(target, `pgfleet_${source.name}`, marker, 900_000);
      seconds = (performance.now() - t0) / 1000;
      const used = process.cpuUsage(cpu0);
      cpu = {
        replicator: (used.user + used.system) / 1e6,
        applyBackend: await backendCpuSeconds(target, `pgfleet-mm:${edge}`),
        walsender: await backendCpuSeconds(source, `pgfleet-mm:${edge}:stream`),
      };
    } finally {
      await rep.stop();
    }
    const [c] = await target.query<{ n: number }>('SELECT count(*)::int AS n FROM pgfleet.conflicts');
    return {
      system: 'pgfleet',
      seconds,
      ...written,
      differing: await differing(source, target, w),
      cpu,
      conflicts: c?.n ?? 0,
    };
  } finally {
    await teardownPgfleet(nodes);
  }
}
