import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { connect } from '@pgfleet/connection';
import type { SandboxNode } from '@pgfleet/sandbox';
import { type Lsn, parseLsn } from '@pgfleet/wal';

const run = promisify(execFile);

/**
 * A replication workload both systems drain from the same backlog: tables created (and
 * loaded the same way) on both nodes before replication starts, then a backlog written on
 * the source while nothing replicates, then a marker transaction whose position tells when
 * the target applied everything.
 */
export interface DrainWorkload {
  name: string;
  /** Replicated tables, `schema.table`. The marker table is added by the harness. */
  tables: string[];
  /** Creates and loads the tables; runs on every node, so they start with the same rows. */
  setup(node: SandboxNode): Promise<void>;
  /**
   * Local writes on the target after replication was set up and before the backlog:
   * rows the source has not seen, so the backlog's changes of them race (conflicts).
   */
  writeOnTarget?(target: SandboxNode): Promise<void>;
  /** Writes the backlog on the source; returns what it wrote. */
  writeBacklog(source: SandboxNode): Promise<{ transactions: number; changes: number }>;
  /** Tables to compare row by row after a drain (default: `tables`). */
  compare?: string[];
}

/** The marker: one row updated by the last transaction of every backlog. */
export const MARKER_TABLE = 'public.bench_marker';
const MARKER_DDL = `CREATE TABLE IF NOT EXISTS bench_marker (id int PRIMARY KEY, n bigint NOT NULL)`;

export async function setupMarker(node: SandboxNode): Promise<void> {
  await node.query('DROP TABLE IF EXISTS bench_marker');
  await node.query(MARKER_DDL);
  await node.query('INSERT INTO bench_marker VALUES (1, 0)');
}

/**
 * Commits the marker transaction on the source and returns a position inside it: every
 * backlog transaction ends before it and the marker ends after it, so a target whose
 * origin progress is past it applied the whole backlog.
 */
export async function commitMarker(source: SandboxNode): Promise<Lsn> {
  const client = await connect(source.conninfo(), {
    connectTimeoutMs: 10_000,
    applicationName: 'bench-marker',
  });
  try {
    await client.query('BEGIN');
    const { rows } = await client.query('SELECT pg_current_wal_insert_lsn()::text AS lsn');
    await client.query('UPDATE bench_marker SET n = n + 1 WHERE id = 1');
    await client.query('COMMIT');
    return parseLsn(rows[0].lsn as string);
  } finally {
    await client.end().catch(() => {});
  }
}

/** md5 of a table's rows in key order, as text: equal on two nodes when they hold the same rows. */
export async function tableDigest(node: SandboxNode, table: string): Promise<string> {
  const [row] = await node.query<{ d: string; n: string }>(
    `SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) AS d, count(*)::text AS n FROM ${table} t`,
  );
  return `${row?.n}:${row?.d}`;
}

/** The pgbench binary: the sandbox installation's, else Debian's (any major drives any server). */
export function findPgbench(binDir: string): string {
  const own = join(binDir, 'pgbench');
  if (existsSync(own)) return own;
  const debian = '/usr/lib/postgresql';
  if (existsSync(debian))
    for (const v of readdirSync(debian).sort().reverse()) {
      const p = join(debian, v, 'bin', 'pgbench');
      if (existsSync(p)) return p;
    }
  throw new Error('bench: pgbench not found (install Debian postgresql-client or postgresql)');
}

/** Runs pgbench against `node` (as the sandbox superuser, over TCP on loopback). */
export async function pgbench(pgbenchBin: string, node: SandboxNode, args: string[]): Promise<string> {
  const f = node.facts();
  const { stdout } = await run(
    pgbenchBin,
    ['-h', f.host, '-p', String(f.port), '-U', f.user, ...args, f.database],
    { env: { ...process.env, PGPASSWORD: f.password }, maxBuffer: 16 * 1024 * 1024 },
  );
  return stdout;
}

/** Insert-only backlog: `transactions` × `rowsPerTransaction` new rows (the original shapes). */
export function insertWorkload(transactions: number, rowsPerTransaction: number): DrainWorkload {
  return {
    name: `${transactions.toLocaleString('en-US')} x ${rowsPerTransaction}-row insert tx`,
    tables: ['public.bench_rows'],
    async setup(node) {
      await node.query('DROP TABLE IF EXISTS bench_rows');
      await node.query(
        'CREATE TABLE bench_rows (id bigint PRIMARY KEY, n integer NOT NULL, payload text NOT NULL, at timestamptz NOT NULL DEFAULT now())',
      );
    },
    async writeBacklog(source) {
      await serverLoop(
        source,
        transactions,
        `INSERT INTO bench_rows (id, n, payload)
           SELECT t::bigint * ${rowsPerTransaction} + g, g, md5((t::bigint * ${rowsPerTransaction} + g)::text)
             FROM generate_series(0, ${rowsPerTransaction - 1}) g`,
      );
      return { transactions, changes: transactions * rowsPerTransaction };
    },
  };
}

/**
 * Deletes of rows that exist on both nodes (loaded on each before replication): every
 * transaction deletes `rowsPerTransaction` of them.
 */
export function deleteWorkload(transactions: number, rowsPerTransaction: number): DrainWorkload {
  const total = transactions * rowsPerTransaction;
  return {
    name: `${transactions.toLocaleString('en-US')} x ${rowsPerTransaction}-row delete tx (rows loaded on both nodes)`,
    tables: ['public.bench_rows'],
    async setup(node) {
      await node.query('DROP TABLE IF EXISTS bench_rows');
      await node.query(
        'CREATE TABLE bench_rows (id bigint PRIMARY KEY, n integer NOT NULL, payload text NOT NULL, at timestamptz NOT NULL DEFAULT now())',
      );
      await node.query(
        `INSERT INTO bench_rows (id, n, payload, at)
           SELECT g, g % 1000, md5(g::text), '2024-01-01' FROM generate_series(0, ${total - 1}) g`,
      );
      await node.query('VACUUM FREEZE bench_rows');
    },
    async writeBacklog(source) {
      await serverLoop(
        source,
        transactions,
        `DELETE FROM bench_rows WHERE id >= t::bigint * ${rowsPerTransaction} AND id < (t + 1)::bigint * ${rowsPerTransaction}`,
      );
      return { transactions, changes: total };
    },
  };
}

/** One transaction inserting `rows` rows, then updating every one of them. */
export function largeTransactionWorkload(rows: number): DrainWorkload {
  return {
    name: `1 tx: ${rows.toLocaleString('en-US')} inserts + ${rows.toLocaleString('en-US')} updates`,
    tables: ['public.bench_rows'],
    async setup(node) {
      await node.query('DROP TABLE IF EXISTS bench_rows');
      await node.query(
        'CREATE TABLE bench_rows (id bigint PRIMARY KEY, n integer NOT NULL, payload text NOT NULL, at timestamptz NOT NULL DEFAULT now())',
      );
    },
    async writeBacklog(source) {
      await source.query(
        `DO $$ BEGIN
           INSERT INTO bench_rows (id, n, payload) SELECT g, g, md5(g::text) FROM generate_series(1, ${rows}) g;
           UPDATE bench_rows SET n = n + 1;
         END $$`,
        [],
        { timeoutMs: 600_000 },
      );
      return { transactions: 1, changes: 2 * rows };
    },
  };
}

/**
 * pgbench's default TPC-B-like script (3 UPDATEs + 1 INSERT per transaction) on tables
 * that `pgbench -i` loaded on both nodes before replication: every row the backlog updates
 * was written on the target by someone else than the source, the case users meet when they
 * restore the same data everywhere and start a mesh. pgbench_history gets a key (pgfleet
 * needs one on every table; native does not care).
 */
export function tpcbWorkload(pgbenchBin: string, transactions: number, clients = 4): DrainWorkload {
  const tables = [
    'public.pgbench_accounts',
    'public.pgbench_branches',
    'public.pgbench_tellers',
    'public.pgbench_history',
  ];
  return {
    name: `pgbench TPC-B, ${transactions.toLocaleString('en-US')} tx (scale 1, loaded on both nodes)`,
    tables,
    async setup(node) {
      await pgbench(pgbenchBin, node, ['-i', '-q', '-s', '1']);
      await node.query(
        'ALTER TABLE pgbench_history ADD COLUMN hid bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY',
      );
      await node.query('VACUUM ANALYZE');
    },
    async writeBacklog(source) {
      const perClient = Math.ceil(transactions / clients);
      await pgbench(pgbenchBin, source, ['-n', '-c', String(clients), '-j', '2', '-t', String(perClient)]);
      return { transactions: perClient * clients, changes: perClient * clients * 4 };
    },
  };
}

/**
 * TPC-B where every update races: after replication is set up the target rewrites every
 * account, teller and branch itself (same values, a new local row version the source has
 * not seen, committed before the backlog), so each of the backlog's three updates per
 * transaction is an update_differs conflict that the remote change wins
 * (last_update_wins). Native replication just applies them; both end equal to the source.
 */
export function tpcbRacedWorkload(pgbenchBin: string, transactions: number, clients = 4): DrainWorkload {
  const plain = tpcbWorkload(pgbenchBin, transactions, clients);
  return {
    ...plain,
    name: `pgbench TPC-B, ${transactions.toLocaleString('en-US')} tx on rows the target rewrote meanwhile (every account update a conflict)`,
    async writeOnTarget(target) {
      for (const [table, balance] of [
        ['pgbench_accounts', 'abalance'],
        ['pgbench_tellers', 'tbalance'],
        ['pgbench_branches', 'bbalance'],
      ])
        await target.query(`UPDATE ${table} SET ${balance} = ${balance}`);
      await target.query('VACUUM ANALYZE pgbench_accounts, pgbench_tellers, pgbench_branches');
    },
  };
}

/** `count` transactions, each running `sql` with `t` = 0..count−1, server-side. */
async function serverLoop(node: SandboxNode, count: number, sql: string): Promise<void> {
  const client = await connect(node.conninfo(), {
    connectTimeoutMs: 10_000,
    applicationName: 'bench-backlog',
  });
  try {
    await client.query(
      `DO $$ DECLARE t int; BEGIN FOR t IN 0..${count - 1} LOOP ${sql}; COMMIT; END LOOP; END $$`,
    );
  } finally {
    await client.end().catch(() => {});
  }
}
