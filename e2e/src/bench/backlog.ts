import { connect } from '@pgfleet/connection';
import type { SandboxNode } from '@pgfleet/sandbox';
import { type Lsn, parseLsn } from '@pgfleet/wal';

/** The table both replication systems drain in the throughput benchmark. */
export const BENCH_TABLE_DDL = `CREATE TABLE IF NOT EXISTS bench_rows (
  id bigint PRIMARY KEY,
  n integer NOT NULL,
  payload text NOT NULL,
  at timestamptz NOT NULL DEFAULT now()
)`;

export interface BacklogShape {
  transactions: number;
  rowsPerTransaction: number;
}

export interface Backlog {
  /** Id of the last row written (ids are `firstId` .. lastId, one per row). */
  lastId: number;
  /**
   * WAL insert position read inside the last transaction, just before its COMMIT: every
   * earlier backlog transaction ends before it and the last one ends after it, so a
   * replica's applied end LSN is past it exactly when the whole backlog was applied.
   */
  lastTxStartLsn: Lsn;
}

/**
 * Writes `transactions` committed transactions of `rowsPerTransaction` rows each, ids from
 * `firstId`, server-side (a DO block that COMMITs in its loop), so the writer is never the
 * bottleneck being measured.
 */
export async function writeBacklog(node: SandboxNode, shape: BacklogShape, firstId = 1): Promise<Backlog> {
  const client = await connect(node.conninfo(), {
    connectTimeoutMs: 10_000,
    applicationName: 'bench-backlog',
  });
  try {
    const last = shape.transactions - 1;
    await client.query(
      `DO $$
       DECLARE t int; base bigint;
       BEGIN
         FOR t IN 0..${last} LOOP
           base := ${firstId} + t::bigint * ${shape.rowsPerTransaction};
           INSERT INTO bench_rows (id, n, payload)
             SELECT base + g, g, md5((base + g)::text) FROM generate_series(0, ${shape.rowsPerTransaction - 1}) g;
           IF t = ${last} THEN
             PERFORM set_config('pgfleet_bench.last_tx_lsn', pg_current_wal_insert_lsn()::text, false);
           END IF;
           COMMIT;
         END LOOP;
       END $$`,
    );
    const { rows } = await client.query(`SELECT current_setting('pgfleet_bench.last_tx_lsn') AS lsn`);
    return {
      lastId: firstId + shape.transactions * shape.rowsPerTransaction - 1,
      lastTxStartLsn: parseLsn(rows[0].lsn as string),
    };
  } finally {
    await client.end().catch(() => {});
  }
}
