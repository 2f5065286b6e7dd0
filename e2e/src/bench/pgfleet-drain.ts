import { readFileSync } from 'node:fs';
import { connect } from '@pgfleet/connection';
import { initMesh, type ResolvedConfig, resolveConfig } from '@pgfleet/multimaster';
import type { SandboxNode } from '@pgfleet/sandbox';
import { formatLsn, type Lsn } from '@pgfleet/wal';
import pino from 'pino';
import { BENCH_TABLE_DDL } from './backlog.js';

/** The value of the bench knob `name`, one of `choices`, or null when unset. */
export function benchChoice<T extends string>(name: string, choices: readonly T[]): T | null {
  const v = process.env[name]?.trim();
  if (!v) return null;
  if (!(choices as readonly string[]).includes(v))
    throw new Error(`${name}: expected one of ${choices.join(', ')}, got "${v}"`);
  return v as T;
}

/** pgfleet's own logs stay quiet during a benchmark unless asked for. */
export const benchLogger = pino({ level: process.env.PGFLEET_BENCH_LOG ?? 'silent' }, pino.destination(2));

/** A mesh config over sandbox nodes (node names are the sandbox names), no HTTP listener. */
export function benchMeshConfig(
  nodes: SandboxNode[],
  tables: Array<string | { name: string; columns?: string[] }>,
): ResolvedConfig {
  // pgfleet runs at its defaults; BENCH_PGFLEET_STREAMING=on turns on apply.streaming.
  const streaming = benchChoice('BENCH_PGFLEET_STREAMING', ['on', 'off'] as const);
  return resolveConfig({
    nodes: nodes.map((n) => ({ name: n.name, conninfo: n.conninfo() })),
    tables,
    http: { listen: false },
    ...(streaming ? { apply: { streaming } } : {}),
  });
}

/**
 * Drops every object `pgfleet-mm init` made on `nodes` (slots, publications, origins,
 * schema pgfleet), so each benchmark starts from a clean server. The replicator must be
 * stopped (an active slot cannot be dropped).
 */
/** A clean bench_rows table on every node and a freshly initialised pgfleet mesh over it. */
export async function prepareBenchMesh(nodes: SandboxNode[]) {
  await teardownPgfleet(nodes);
  for (const n of nodes) {
    await n.query('DROP TABLE IF EXISTS bench_rows');
    await n.query(BENCH_TABLE_DDL);
  }
  const config = benchMeshConfig(nodes, ['public.bench_rows']);
  await initMesh(config, { logger: benchLogger });
  return config;
}

export async function teardownPgfleet(nodes: SandboxNode[]): Promise<void> {
  for (const n of nodes) {
    await n.query(
      `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name LIKE 'pgfleet\\_%'`,
    );
    const pubs = await n.query<{ name: string }>(
      `SELECT quote_ident(pubname) AS name FROM pg_publication WHERE pubname LIKE 'pgfleet\\_%'`,
    );
    for (const p of pubs) await n.query(`DROP PUBLICATION ${p.name}`);
    await n.query(
      `SELECT pg_replication_origin_drop(roname) FROM pg_replication_origin WHERE roname LIKE 'pgfleet\\_%'`,
    );
    await n.query('DROP SCHEMA IF EXISTS pgfleet CASCADE');
  }
}

/**
 * Polls `target` until the replication origin `origin` has progressed past `lsn` (the
 * target's own record of the applied source end LSN, written by each apply commit), then
 * returns. Cheap: no table scan competes with the apply being timed.
 */
export async function waitForOriginPast(
  target: SandboxNode,
  origin: string,
  lsn: Lsn,
  timeoutMs = 180_000,
  intervalMs = 20,
): Promise<void> {
  const client = await connect(target.conninfo(), {
    connectTimeoutMs: 10_000,
    applicationName: 'bench-wait-origin',
  });
  try {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const { rows } = await client.query(
        `SELECT coalesce(pg_replication_origin_progress($1, false), '0/0') > $2::pg_lsn AS done,
                coalesce(pg_replication_origin_progress($1, false), '0/0')::text AS at`,
        [origin, formatLsn(lsn)],
      );
      if (rows[0]?.done) return;
      if (Date.now() > deadline)
        throw new Error(
          `bench: origin ${origin} on ${target.name} at ${rows[0]?.at}, not past ${formatLsn(lsn)} after ${timeoutMs} ms`,
        );
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  } finally {
    await client.end().catch(() => {});
  }
}

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ: 100 on every Linux we run on). */
const USER_HZ = 100;

/** utime + stime, in seconds, of a process from the text of /proc/<pid>/stat; null if unreadable. */
export function parseProcStatCpu(text: string): number | null {
  // The command name (field 2) is in parentheses and may hold spaces: split after it.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  return Number.isFinite(utime) && Number.isFinite(stime) ? (utime + stime) / USER_HZ : null;
}

/**
 * CPU seconds used so far by the backend of `node` whose application_name is `appName`
 * (the servers run on this machine, so /proc is readable); null when there is none.
 */
export async function backendCpuSeconds(node: SandboxNode, appName: string): Promise<number | null> {
  return processCpuSeconds(
    node,
    'SELECT pid FROM pg_stat_activity WHERE application_name = $1 ORDER BY backend_start DESC LIMIT 1',
    [appName],
  );
}

/** CPU seconds of PostgreSQL's own apply worker on `node` (native logical replication). */
export function nativeApplyWorkerCpuSeconds(node: SandboxNode): Promise<number | null> {
  return processCpuSeconds(
    node,
    `SELECT pid FROM pg_stat_activity WHERE backend_type IN ('logical replication worker', 'logical replication apply worker') LIMIT 1`,
    [],
  );
}

async function processCpuSeconds(node: SandboxNode, sql: string, params: unknown[]): Promise<number | null> {
  const [row] = await node.query<{ pid: number }>(sql, params);
  if (!row) return null;
  try {
    return parseProcStatCpu(readFileSync(`/proc/${row.pid}/stat`, 'utf8'));
  } catch {
    return null;
  }
}

export async function countRows(node: SandboxNode, table = 'bench_rows'): Promise<number> {
  const [row] = await node.query<{ n: string }>(`SELECT count(*)::int8::text AS n FROM ${table}`);
  return Number(row?.n);
}
