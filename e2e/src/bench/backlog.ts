import type { SandboxNode } from '@pgfleet/sandbox';

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

/**
 * Writes `transactions` committed transactions of `rowsPerTransaction` rows each, ids from
 * `firstId`, server-side (a DO block that COMMITs in its loop), so the writer is never the
 * bottleneck being measured.
 */
export async function writeBacklog(node: SandboxNode, shape: BacklogShape, firstId = 1): Promise<void> {
  await node.query(
    `DO $$
     DECLARE t int; base bigint;
     BEGIN
       FOR t IN 0..${shape.transactions - 1} LOOP
         base := ${firstId} + t::bigint * ${shape.rowsPerTransaction};
         INSERT INTO bench_rows (id, n, payload)
           SELECT base + g, g, md5((base + g)::text) FROM generate_series(0, ${shape.rowsPerTransaction - 1}) g;
         COMMIT;
       END LOOP;
     END $$`,
    [],
    { timeoutMs: 600_000 },
  );
}

/** Polls until `node` holds `expected` rows in bench_rows; returns when it does. */
export async function waitForRows(node: SandboxNode, expected: number, timeoutMs = 600_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [row] = await node.query<{ n: string }>('SELECT count(*) AS n FROM bench_rows');
    if (Number(row?.n) >= expected) return;
    if (Date.now() > deadline)
      throw new Error(`bench: ${node.name} has ${row?.n} of ${expected} rows after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
