import { connect } from '@pgfleet/connection';
import { initMesh, startReplicator } from '@pgfleet/multimaster';
import type { SandboxNode } from '@pgfleet/sandbox';
import { benchLogger, benchMeshConfig, teardownPgfleet } from './pgfleet-drain.js';
import { type Summary, summarize } from './stats.js';

/**
 * How lag is measured. Each row carries `at`, its source write time (clock_timestamp() at
 * INSERT, a few microseconds before the source COMMIT). The mesh publishes mesh_rows with
 * a column list that leaves out `arrived`, so the apply INSERT on a target does not carry
 * it and the target's own default, clock_timestamp(), fills it at the moment the row is
 * applied there. lag = arrived − at, both read from the same machine clock.
 * (pg_xact_commit_timestamp() of the applied row would not do: the apply sets the
 * source's commit timestamp through its replication origin, so it shows the source time.)
 * `arrived` is taken at the apply INSERT, microseconds before the apply COMMIT makes the
 * row visible; against a 250 ms target that is noise.
 */
export const MESH_TABLE_DDL = `CREATE TABLE IF NOT EXISTS mesh_rows (
  node text NOT NULL,
  seq bigint NOT NULL,
  at timestamptz NOT NULL DEFAULT clock_timestamp(),
  arrived timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (node, seq)
)`;

export interface MeshLagOptions {
  /** Writing time per node. */
  seconds: number;
  /** Transactions per second per node (one row each). */
  ratePerNode: number;
  /** Rows written in the first `warmupSeconds` are left out of the steady-state figures. */
  warmupSeconds: number;
}

export interface MeshLagResult {
  nodes: number;
  /** Achieved source rate per node (tx/s), from each writer's own elapsed time. */
  achievedTxPerSecond: number[];
  /** Lag over every (row, other node) pair written after the warm-up, ms. */
  lag: Summary;
  /** Worst per-target p99, ms (the mesh is only as good as its slowest edge). */
  worstTargetP99: { target: string; p99: number };
  /** Time from the last write until every node held every row, ms. */
  settleMs: number;
}

/** Paced server-side writer: one single-row transaction at a time, `rate` per second. */
export function pacedWriterSql(node: string, count: number, rate: number): string {
  const lit = node.replaceAll("'", "''");
  return `DO $$
    DECLARE i int; t0 timestamptz := clock_timestamp(); ahead float8;
    BEGIN
      FOR i IN 0..${count - 1} LOOP
        INSERT INTO mesh_rows (node, seq) VALUES ('${lit}', i);
        COMMIT;
        -- Pace in steps of ~10 ms: sleep until the schedule says the next batch is due.
        IF i % 10 = 9 THEN
          ahead := extract(epoch FROM t0 - clock_timestamp()) + (i + 1)::float8 / ${rate};
          IF ahead > 0 THEN PERFORM pg_sleep(ahead); END IF;
        END IF;
      END LOOP;
    END $$`;
}

async function runWriter(node: SandboxNode, count: number, rate: number): Promise<number> {
  const client = await connect(node.conninfo(), {
    connectTimeoutMs: 10_000,
    applicationName: 'bench-writer',
  });
  try {
    const t0 = performance.now();
    await client.query(pacedWriterSql(node.name, count, rate));
    return count / ((performance.now() - t0) / 1000);
  } finally {
    await client.end().catch(() => {});
  }
}

async function waitForAllRows(nodes: SandboxNode[], expected: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (const n of nodes) {
    for (;;) {
      const [row] = await n.query<{ n: string }>('SELECT count(*)::int8::text AS n FROM mesh_rows');
      if (Number(row?.n) >= expected) break;
      if (Date.now() > deadline)
        throw new Error(
          `bench: mesh node ${n.name} holds ${row?.n} of ${expected} rows after the writers stopped`,
        );
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/**
 * Steady-state lag on a mesh of `nodes` (every node replicates to every other): a paced
 * writer per node, the replicator (all edges, in this process) running throughout.
 */
export async function meshLag(nodes: SandboxNode[], opts: MeshLagOptions): Promise<MeshLagResult> {
  await teardownPgfleet(nodes);
  for (const n of nodes) {
    await n.query('DROP TABLE IF EXISTS mesh_rows');
    await n.query(MESH_TABLE_DDL);
  }
  const config = benchMeshConfig(nodes, [{ name: 'public.mesh_rows', columns: ['node', 'seq', 'at'] }]);
  await initMesh(config, { logger: benchLogger });
  const rep = startReplicator(config, { logger: benchLogger });
  try {
    // Let every edge connect before the clock starts.
    const ready = Date.now() + 15_000;
    while (rep.status().edges.some((e) => e.state !== 'streaming') && Date.now() < ready)
      await new Promise((r) => setTimeout(r, 50));
    const count = Math.round(opts.seconds * opts.ratePerNode);
    const [startRow] = await nodes[0]!.query<{ now: string }>('SELECT clock_timestamp()::text AS now');
    const achieved = await Promise.all(nodes.map((n) => runWriter(n, count, opts.ratePerNode)));
    const stopped = performance.now();
    await waitForAllRows(nodes, count * nodes.length, 120_000);
    const settleMs = performance.now() - stopped;

    const all: number[] = [];
    let worst = { target: '', p99: -1 };
    for (const n of nodes) {
      const rows = await n.query<{ ms: number }>(
        `SELECT extract(epoch FROM arrived - at)::float8 * 1000 AS ms FROM mesh_rows
          WHERE node <> $1 AND at >= $2::timestamptz + make_interval(secs => $3)`,
        [n.name, startRow?.now, opts.warmupSeconds],
      );
      const ms = rows.map((r) => r.ms);
      const s = summarize(ms);
      if (s.p99 > worst.p99) worst = { target: n.name, p99: s.p99 };
      for (const v of ms) all.push(v);
    }
    return {
      nodes: nodes.length,
      achievedTxPerSecond: achieved,
      lag: summarize(all),
      worstTargetP99: worst,
      settleMs,
    };
  } finally {
    await rep.stop();
    await teardownPgfleet(nodes);
    for (const n of nodes) await n.query('DROP TABLE IF EXISTS mesh_rows');
  }
}
