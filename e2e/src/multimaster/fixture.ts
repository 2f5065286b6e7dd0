import { writeFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { duplicateJsonKeys } from '@pgfleet/cli/testing';
import {
  checkMesh,
  initMesh,
  type ReplicatorHandle,
  type ReplicatorOptions,
  type ResolvedConfig,
  resolveConfig,
  startReplicator,
  type TableCheck,
} from '@pgfleet/multimaster';
import { Sandbox, type SandboxNode, slotsConfirmed } from '@pgfleet/sandbox';
import pg from 'pg';
import pino, { type Logger } from 'pino';
import type { ClusterNode, ClusterProvider } from '../providers/types.js';

/** What the helpers need of a node: a sandbox node, or a provider's (sandbox or containers). */
export type MeshNode = Pick<ClusterNode, 'name' | 'conninfo' | 'uri' | 'query'>;

/** Log lines a replicator wrote, parsed, for tests that assert on logs. */
export interface CapturedLogs {
  logger: Logger;
  lines: Array<Record<string, unknown>>;
  /** Raw lines that carry a key twice (pino repeats a key a child logger binds again). */
  duplicated: string[];
}

/** A pino logger that keeps every line in memory (and echoes when PGFLEET_TEST_LOG is set). */
export function captureLogs(level = process.env.PGFLEET_TEST_LOG ?? 'info'): CapturedLogs {
  const lines: Array<Record<string, unknown>> = [];
  const duplicated: string[] = [];
  const echo = process.env.PGFLEET_TEST_LOG !== undefined;
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (!line) continue;
        lines.push(JSON.parse(line) as Record<string, unknown>);
        if (duplicateJsonKeys(line).length > 0) duplicated.push(line);
        if (echo) process.stderr.write(`${line}\n`);
      }
      cb();
    },
  });
  return { logger: pino({ level }, stream), lines, duplicated };
}

/** Sandbox with N logical nodes. Autovacuum is off so an idle mesh writes no WAL of its own. */
export async function startNodes(names: string[]): Promise<{ sb: Sandbox; nodes: SandboxNode[] }> {
  const sb = await Sandbox.create({ name: 'mm-e2e' });
  const nodes = await sb.startLogicalNodes(names, { autovacuum: false });
  return { sb, nodes };
}

/** The same N logical nodes from a provider (scenarios that also run on containers). */
export function startProviderNodes(provider: ClusterProvider, names: string[]): Promise<ClusterNode[]> {
  return provider.startLogicalNodes(names, { settings: { autovacuum: false } });
}

/** Runs the same SQL on every node (DDL is not replicated). */
export async function onAll(nodes: MeshNode[], sql: string): Promise<void> {
  for (const n of nodes) await n.query(sql);
}

export function meshConfig(
  nodes: MeshNode[],
  raw: Record<string, unknown>,
  opts: { from?: string } = {},
): ResolvedConfig {
  return resolveConfig({
    nodes: nodes.map((n) => ({
      name: n.name,
      conninfo: opts.from ? n.conninfo({ from: opts.from }) : n.conninfo(),
    })),
    http: { listen: false },
    statusIntervalMs: 200,
    reconnect: { baseDelayMs: 100, maxDelayMs: 1000 },
    ...raw,
  });
}

export async function initAndStart(
  config: ResolvedConfig,
  logger: Logger,
  opts: Omit<ReplicatorOptions, 'logger'> = {},
): Promise<ReplicatorHandle> {
  await initMesh(config, { logger });
  return startReplicator(config, { logger, ...opts });
}

/** Opens a long-lived client on a node (for workloads; node.query connects per call). */
export async function client(node: MeshNode): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: node.uri() });
  c.on('error', () => {});
  await c.connect();
  return c;
}

export async function count(node: MeshNode, table: string, where = 'true'): Promise<number> {
  const rows = await node.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table} WHERE ${where}`);
  return rows[0]?.n ?? -1;
}

/** confirmed_flush_lsn of every pgfleet slot, as text, keyed `node:slot`. */
export async function slotPositions(nodes: MeshNode[]): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const n of nodes) {
    const rows = await n.query<{ slot: string; lsn: string }>(
      `SELECT slot_name AS slot, confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name LIKE 'pgfleet\\_%' ORDER BY 1`,
    );
    for (const r of rows) out[`${n.name}:${r.slot}`] = r.lsn;
  }
  return out;
}

/** Replication origin progress of every pgfleet origin, keyed `node:origin`. */
export async function originPositions(nodes: MeshNode[]): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const n of nodes) {
    const rows = await n.query<{ origin: string; lsn: string }>(
      `SELECT external_id AS origin, coalesce(pg_replication_origin_progress(external_id, true), '0/0')::text AS lsn
         FROM pg_replication_origin_status WHERE external_id LIKE 'pgfleet\\_%' ORDER BY 1`,
    );
    for (const r of rows) out[`${n.name}:${r.origin}`] = r.lsn;
  }
  return out;
}

/** Waits until every pgfleet slot on every node confirmed what its node had written (sandbox slotsConfirmed). */
export function quiesce(nodes: MeshNode[], timeoutMs = 30_000): Promise<void> {
  return slotsConfirmed(nodes, { prefix: 'pgfleet\\_', timeoutMs });
}

/** checkMesh restricted to some tables (others may differ on purpose: filters). */
export async function checkTables(config: ResolvedConfig, tables: string[]): Promise<TableCheck[]> {
  const all = await checkMesh(config);
  return all.filter((t) => tables.includes(t.table));
}

/** Conflicts recorded on a node for one table. */
export async function conflictsOn(
  node: MeshNode,
  schema: string,
  table: string,
): Promise<Array<Record<string, unknown>>> {
  return node.query(
    `SELECT edge, kind, policy, resolution, reason, key, local_row, remote_row, local_origin
       FROM pgfleet.conflicts WHERE table_schema = $1 AND table_name = $2 ORDER BY id`,
    [schema, table],
  );
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Writes a libpq password file (mode 0600) with one line per node. */
export function writePgpass(file: string, nodes: SandboxNode[]): void {
  writeFileSync(
    file,
    nodes
      .map((n) => {
        const f = n.facts();
        return `${f.host}:${f.port}:${f.database}:${f.user}:${f.password}`;
      })
      .join('\n'),
    { mode: 0o600 },
  );
}
