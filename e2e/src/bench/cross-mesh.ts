import { connect } from '@pgfleet/connection';
import { initMesh } from '@pgfleet/multimaster';
import type { SandboxNode } from '@pgfleet/sandbox';
import { benchLogger, benchMeshConfig, teardownPgfleet } from './pgfleet-drain.js';
import { spawnReplicator } from './replicator-process.js';
import { type Summary, summarize } from './stats.js';
import { tableDigest } from './workload.js';

/**
 * A mesh where every node updates rows the other nodes wrote: `accounts` rows are inserted
 * by their owner node (id mod N) and replicated, then every node's writer updates random
 * accounts (2/3 of them written elsewhere, on 3 nodes) and logs each update in `events`
 * in the same transaction. Lag is measured on the events as in mesh-lag.ts: `arrived` is
 * not published, so each target fills it with clock_timestamp() when it applies the row.
 */
const ACCOUNTS_DDL = `CREATE TABLE xm_accounts (
  id int PRIMARY KEY, balance bigint NOT NULL, last_node text NOT NULL, at timestamptz NOT NULL)`;
const EVENTS_DDL = `CREATE TABLE xm_events (
  node text NOT NULL, seq bigint NOT NULL,
  at timestamptz NOT NULL DEFAULT clock_timestamp(),
  arrived timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (node, seq))`;

export interface CrossMeshResult {
  ratePerNode: number;
  achievedTxPerSecond: number[];
  lag: Summary;
  /** From the writers' end until every node held every event; null if not within the wait. */
  settleMs: number | null;
  conflicts: number;
  /** Every node holds the same accounts at the end. */
  converged: boolean;
  /** Peak RSS of the `pgfleet-mm run` process driving every edge, MB. */
  peakRssMb: number;
}

function writerSql(node: string, count: number, rate: number, accounts: number): string {
  const lit = node.replaceAll("'", "''");
  return `DO $$
    DECLARE i int; k int; t0 timestamptz := clock_timestamp(); ahead float8;
    BEGIN
      FOR i IN 0..${count - 1} LOOP
        -- The account is drawn first: random() in the WHERE clause would be drawn per row
        -- (a sequential scan updating any number of rows, not one).
        k := (random() * ${accounts - 1})::int;
        UPDATE xm_accounts SET balance = balance + 1, last_node = '${lit}', at = clock_timestamp()
         WHERE id = k;
        INSERT INTO xm_events (node, seq) VALUES ('${lit}', i);
        COMMIT;
        IF i % 10 = 9 THEN
          ahead := extract(epoch FROM t0 - clock_timestamp()) + (i + 1)::float8 / ${rate};
          IF ahead > 0 THEN PERFORM pg_sleep(ahead); END IF;
        END IF;
      END LOOP;
    END $$`;
}

async function onClient<T>(
  node: SandboxNode,
  fn: (q: (sql: string) => Promise<unknown>) => Promise<T>,
): Promise<T> {
  const client = await connect(node.conninfo(), {
    connectTimeoutMs: 10_000,
    applicationName: 'bench-writer',
  });
  try {
    return await fn((sql) => client.query(sql));
  } finally {
    await client.end().catch(() => {});
  }
}

/** Waits until every node holds `expected` events; false when that took longer than `timeoutMs`. */
async function waitForEvents(nodes: SandboxNode[], expected: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (const n of nodes)
    for (;;) {
      const [row] = await n.query<{ n: string }>('SELECT count(*)::text AS n FROM xm_events');
      if (Number(row?.n) >= expected) break;
      if (Date.now() > deadline) return false;
      await new Promise((r) => setTimeout(r, 50));
    }
  return true;
}

/** One run at `ratePerNode` transactions per second per node for `seconds`. */
export async function crossMesh(
  nodes: SandboxNode[],
  opts: { ratePerNode: number; seconds: number; warmupSeconds: number; accounts?: number },
): Promise<CrossMeshResult> {
  const accounts = opts.accounts ?? 3000;
  await teardownPgfleet(nodes);
  for (const n of nodes) {
    await n.query('DROP TABLE IF EXISTS xm_accounts, xm_events');
    await n.query(ACCOUNTS_DDL);
    await n.query(EVENTS_DDL);
  }
  const tables = ['public.xm_accounts', { name: 'public.xm_events', columns: ['node', 'seq', 'at'] }];
  await initMesh(benchMeshConfig(nodes, tables), { logger: benchLogger });
  const rep = spawnReplicator({
    nodes: nodes.map((n) => ({ name: n.name, conninfo: n.conninfo() })),
    tables,
  });
  try {
    // Every slot in use: every edge streams.
    const ready = Date.now() + 30_000;
    for (const n of nodes)
      while (
        (
          await n.query<{ idle: number }>(
            `SELECT count(*)::int AS idle FROM pg_replication_slots WHERE slot_name LIKE 'pgfleet\\_%' AND NOT active`,
          )
        )[0]?.idle !== 0
      ) {
        if (Date.now() > ready)
          throw new Error(`bench: the replicator did not start streaming from ${n.name}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    // Each node inserts the accounts it owns; they replicate to the others.
    await Promise.all(
      nodes.map((n, k) =>
        n.query(
          `INSERT INTO xm_accounts SELECT g, 0, $1, clock_timestamp() FROM generate_series(0, ${accounts - 1}) g WHERE g % ${nodes.length} = ${k}`,
          [n.name],
        ),
      ),
    );
    for (const n of nodes) {
      const deadline = Date.now() + 60_000;
      while (
        Number((await n.query<{ c: string }>('SELECT count(*)::text AS c FROM xm_accounts'))[0]?.c) < accounts
      ) {
        if (Date.now() > deadline) throw new Error(`bench: accounts did not reach ${n.name}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    const count = Math.round(opts.seconds * opts.ratePerNode);
    const [startRow] = await nodes[0]!.query<{ now: string }>('SELECT clock_timestamp()::text AS now');
    const achieved = await Promise.all(
      nodes.map((n) =>
        onClient(n, async (q) => {
          const t0 = performance.now();
          await q(writerSql(n.name, count, opts.ratePerNode, accounts));
          return count / ((performance.now() - t0) / 1000);
        }),
      ),
    );
    const stopped = performance.now();
    // A mesh that cannot keep up is reported as such, not waited for without end.
    const settled = await waitForEvents(nodes, count * nodes.length, Math.max(30_000, opts.seconds * 3000));
    const settleMs = settled ? performance.now() - stopped : null;
    const all: number[] = [];
    for (const n of nodes) {
      const rows = await n.query<{ ms: number }>(
        `SELECT extract(epoch FROM arrived - at)::float8 * 1000 AS ms FROM xm_events
          WHERE node <> $1 AND at >= $2::timestamptz + make_interval(secs => $3)`,
        [n.name, startRow?.now, opts.warmupSeconds],
      );
      for (const r of rows) all.push(r.ms);
    }
    // Converged: wait until every node holds the same accounts (the last updates are in flight).
    let converged = false;
    const until = Date.now() + (settled ? 60_000 : 0);
    while (!converged && Date.now() < until) {
      const sums = await Promise.all(nodes.map((n) => tableDigest(n, 'xm_accounts')));
      converged = sums.every((s) => s === sums[0]);
      if (!converged) await new Promise((r) => setTimeout(r, 200));
    }
    let conflicts = 0;
    for (const n of nodes)
      conflicts +=
        (await n.query<{ c: number }>('SELECT count(*)::int AS c FROM pgfleet.conflicts'))[0]?.c ?? 0;
    return {
      ratePerNode: opts.ratePerNode,
      achievedTxPerSecond: achieved,
      lag: summarize(all),
      settleMs,
      conflicts,
      converged,
      peakRssMb: rep.peakRssMb(),
    };
  } finally {
    await rep.stop();
    await teardownPgfleet(nodes);
    for (const n of nodes) await n.query('DROP TABLE IF EXISTS xm_accounts, xm_events');
  }
}
