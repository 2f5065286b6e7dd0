import type { SandboxNode } from '@pgfleet/sandbox';
import { type BacklogShape, BENCH_TABLE_DDL, waitForRows, writeBacklog } from './backlog.js';

export interface DrainResult {
  label: string;
  transactions: number;
  rows: number;
  seconds: number;
}

/**
 * PostgreSQL's own logical replication draining a backlog: publication on `source`,
 * subscription on `target` created disabled with copy_data = false, backlog written, then
 * the subscription is enabled and timed until every row is on the target.
 */
export async function drainNative(
  source: SandboxNode,
  target: SandboxNode,
  shape: BacklogShape,
): Promise<DrainResult> {
  for (const n of [source, target]) {
    await n.query('DROP TABLE IF EXISTS bench_rows');
    await n.query(BENCH_TABLE_DDL);
  }
  await source.query('DROP PUBLICATION IF EXISTS bench_pub');
  await source.query('CREATE PUBLICATION bench_pub FOR TABLE bench_rows');
  const conn = source.conninfo().replaceAll("'", "''");
  await target.query(
    `CREATE SUBSCRIPTION bench_sub CONNECTION '${conn}' PUBLICATION bench_pub
       WITH (copy_data = false, enabled = false, create_slot = true, slot_name = 'bench_sub')`,
  );
  try {
    await writeBacklog(source, shape);
    const rows = shape.transactions * shape.rowsPerTransaction;
    const t0 = performance.now();
    await target.query('ALTER SUBSCRIPTION bench_sub ENABLE');
    await waitForRows(target, rows);
    const seconds = (performance.now() - t0) / 1000;
    return { label: 'native', transactions: shape.transactions, rows, seconds };
  } finally {
    await target.query('ALTER SUBSCRIPTION bench_sub DISABLE');
    await target.query('ALTER SUBSCRIPTION bench_sub SET (slot_name = NONE)');
    await target.query('DROP SUBSCRIPTION bench_sub');
    await source.query(`SELECT pg_drop_replication_slot('bench_sub')`);
    await source.query('DROP PUBLICATION bench_pub');
  }
}
