import { connect, PgfleetError, quoteIdent, quoteQualified, toPgfleetError } from '@pgfleet/connection';
import { createLogicalSlot, createOrigin, dropOrigin, dropSlot } from '@pgfleet/wal';
import type pg from 'pg';
import type { Logger } from 'pino';
import { ensureOriginWitness, forgetOrigin } from '../apply/progress-mark.js';
import { deferrableUniqueSql, uniqueKeySql } from '../apply/target-table.js';
import type { NodeConfig, ResolvedConfig, TableSpec } from '../config.js';
import { METADATA_DDL } from '../metadata.js';
import { type Edge, edgesFor } from '../naming.js';
import {
  checkNode,
  compareTables,
  formatProblems,
  type NodeFacts,
  type Problem,
  type TableFacts,
  type WantedTable,
} from './checks.js';

/** `init` found problems; `details.problems` lists every one with node and table. Nothing was created. */
export class InitError extends PgfleetError {
  constructor(message: string, problems: Problem[], options?: ErrorOptions) {
    super('INIT_FAILED', message, { problems }, options);
  }
  get problems(): Problem[] {
    return this.details.problems as Problem[];
  }
}

export interface InitOptions {
  logger?: Logger;
  connectTimeoutMs?: number;
}

export interface InitReport {
  edges: Edge[];
  tables: string[];
  created: { publications: string[]; slots: string[]; origins: string[] };
}

interface Conn {
  node: NodeConfig;
  client: pg.Client;
}

const FACTS_SQL = `
  SELECT current_setting('server_version_num')::int AS version,
         current_setting('wal_level') AS wal_level,
         current_setting('track_commit_timestamp') AS track_commit_timestamp,
         current_setting('max_replication_slots')::int AS max_slots,
         current_setting('max_wal_senders')::int AS max_senders,
         coalesce(current_setting('max_active_replication_origins', true), current_setting('max_replication_slots'))::int AS max_origins,
         (SELECT count(*) FROM pg_replication_slots WHERE slot_name <> ALL($1::text[]))::int AS other_slots,
         (SELECT count(*) FROM pg_replication_slots WHERE slot_name = ANY($1::text[]))::int AS own_slots,
         (SELECT count(*) FROM pg_replication_origin WHERE roname <> ALL($2::text[]))::int AS other_origins,
         (SELECT count(*) FROM pg_replication_origin WHERE roname = ANY($2::text[]))::int AS own_origins`;

const TABLES_SQL = `
  SELECT n.nspname AS schema, c.relname AS name, c.relreplident::text AS replident,
         EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary) AS has_pk,
         coalesce((SELECT json_agg(json_build_object('name', a.attname, 'type', format_type(a.atttypid, a.atttypmod)) ORDER BY a.attnum)
                   FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '[]') AS columns,
         coalesce((SELECT json_agg(a.attname ORDER BY a.attnum)
                   FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
                   WHERE i.indrelid = c.oid AND ((c.relreplident = 'd' AND i.indisprimary) OR (c.relreplident = 'i' AND i.indisreplident))), '[]') AS identity,
         ${uniqueKeySql('c.oid')} AS unique_key,
         ${deferrableUniqueSql('c.oid')} AS deferrable_unique
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY($1::text[])`;

/**
 * Settings, capacity and table shapes of one node, counted against the edges of `edges`
 * (`init` checks them before creating anything; add-node and sequence offsets reuse them).
 */
export async function gatherFacts(
  client: pg.Client,
  node: string,
  edges: Edge[],
  schemas: string[],
): Promise<NodeFacts> {
  const slots = edges.filter((e) => e.source === node).map((e) => e.slot);
  const origins = edges.filter((e) => e.target === node).map((e) => e.origin);
  const { rows } = await client.query(FACTS_SQL, [slots, origins]);
  const r = rows[0];
  const { rows: trows } = await client.query(TABLES_SQL, [schemas]);
  const tables = new Map<string, TableFacts>();
  for (const t of trows) {
    tables.set(`${t.schema}.${t.name}`, {
      schema: t.schema,
      name: t.name,
      columns: t.columns,
      hasPrimaryKey: t.has_pk,
      replicaIdentity: t.replident,
      identityColumns: t.identity,
      uniqueKey: t.unique_key,
      deferrableUnique: t.deferrable_unique,
    });
  }
  return {
    node,
    serverVersionNum: r.version,
    walLevel: r.wal_level,
    trackCommitTimestamp: r.track_commit_timestamp === 'on',
    maxReplicationSlots: r.max_slots,
    maxWalSenders: r.max_senders,
    maxReplicationOrigins: r.max_origins,
    otherSlots: r.other_slots,
    existingOwnSlots: r.own_slots,
    otherOrigins: r.other_origins,
    existingOwnOrigins: r.own_origins,
    tables,
  };
}

/** Expands `schema.*` entries against every node (union), keeping explicit entries as they are. */
export function expandTables(specs: TableSpec[], facts: NodeFacts[]): Array<TableSpec & { table: string }> {
  const out: TableSpec[] = [];
  const explicit = new Set(specs.filter((s) => s.table !== '*').map((s) => `${s.schema}.${s.table}`));
  for (const s of specs) {
    if (s.table !== '*') {
      out.push(s);
      continue;
    }
    const names = new Set<string>();
    for (const f of facts) for (const t of f.tables.values()) if (t.schema === s.schema) names.add(t.name);
    for (const name of [...names].sort()) {
      if (!explicit.has(`${s.schema}.${name}`)) out.push({ ...s, table: name, targets: {} });
    }
  }
  return out;
}

/** Row filter and column list of one table on the edge ending at `target`. */
export function edgeTableFilter(spec: TableSpec, target: string): { rowFilter?: string; columns?: string[] } {
  const o = spec.targets[target];
  const rowFilter = o?.rowFilter ?? spec.rowFilter;
  const columns = o?.columns ?? spec.columns;
  return { ...(rowFilter !== undefined ? { rowFilter } : {}), ...(columns !== undefined ? { columns } : {}) };
}

/** `TABLE a.b (c1, c2) WHERE (f), ...` for CREATE/ALTER PUBLICATION. */
export function publicationTableList(tables: TableSpec[], target: string): string {
  return tables
    .map((t) => {
      const f = edgeTableFilter(t, target);
      const cols = f.columns ? ` (${f.columns.map(quoteIdent).join(', ')})` : '';
      const where = f.rowFilter ? ` WHERE (${f.rowFilter})` : '';
      return `TABLE ONLY ${quoteQualified(t.schema, t.table)}${cols}${where}`;
    })
    .join(', ');
}

/** The server's message plus its DETAIL line (where PostgreSQL says why a filter is refused). */
function serverReason(err: unknown, node?: string): string {
  const e = toPgfleetError(err, node ? { node } : {});
  const detail = (err as { detail?: unknown })?.detail;
  return typeof detail === 'string' && detail ? `${e.message}: ${detail}` : e.message;
}

function problemFrom(node: string, table: string | undefined, err: unknown): Problem {
  const message = serverReason(err, node);
  return table ? { node, table, message } : { node, message };
}

/**
 * Checks every node and creates the mesh: schema `pgfleet`, per-edge publications and
 * slots on sources, origins on targets. All problems are reported together and nothing is
 * created while any remains; objects made by a run that fails half-way are dropped again.
 * Running it again on a ready mesh changes nothing.
 */
export async function initMesh(config: ResolvedConfig, opts: InitOptions = {}): Promise<InitReport> {
  const log = opts.logger?.child({ component: 'init' });
  const edges = edgesFor(config.nodes);
  const conns: Conn[] = [];
  const problems: Problem[] = [];
  try {
    const results = await Promise.allSettled(
      config.nodes.map((node) =>
        connect(node.conninfo, {
          connectTimeoutMs: opts.connectTimeoutMs ?? 5000,
          applicationName: 'pgfleet-mm:init',
        }).then((client) => ({ node, client })),
      ),
    );
    results.forEach((r, i) => {
      const node = config.nodes[i] as NodeConfig;
      if (r.status === 'fulfilled') conns.push(r.value);
      else problems.push(problemFrom(node.name, undefined, r.reason));
    });

    const schemas = [...new Set(config.tables.map((t) => t.schema))];
    const facts: NodeFacts[] = [];
    for (const c of conns) {
      try {
        facts.push(await gatherFacts(c.client, c.node.name, edges, schemas));
      } catch (err) {
        problems.push(problemFrom(c.node.name, undefined, err));
      }
    }
    const tables = expandTables(config.tables, facts);
    for (const s of config.tables) {
      if (s.table === '*' && !tables.some((t) => t.schema === s.schema)) {
        problems.push({
          node: '(all)',
          table: `${s.schema}.*`,
          message: 'schema holds no tables on any node',
        });
      }
    }
    const wanted: WantedTable[] = tables.map((t) => ({
      schema: t.schema,
      name: t.table,
      ...(t.columns ? { columns: t.columns } : {}),
    }));
    for (const f of facts) {
      const perNode = tables.map((t) => {
        // Column lists can differ per target; check the union of lists on every node.
        const lists = [t.columns, ...Object.values(t.targets).map((x) => x.columns)].filter(
          (x): x is string[] => !!x,
        );
        const cols = lists.length ? [...new Set(lists.flat())] : undefined;
        return { schema: t.schema, name: t.table, ...(cols ? { columns: cols } : {}) };
      });
      problems.push(...checkNode(f, config.nodes.length, perNode));
    }
    problems.push(...compareTables(facts, wanted));
    if (problems.length === 0) problems.push(...(await dryRunPublications(conns, edges, tables)));
    if (problems.length > 0) {
      throw new InitError(
        `init found ${problems.length} problem(s); nothing was created:\n${formatProblems(problems)}`,
        problems,
      );
    }
    return await create(config, conns, edges, tables, log);
  } finally {
    await Promise.allSettled(conns.map((c) => c.client.end()));
  }
}

/**
 * Creates each edge's publication in a transaction that is rolled back, and runs an
 * UPDATE/DELETE that matches nothing so the server checks that filter and column list
 * columns are covered by the replica identity (it only checks that when rows change).
 */
async function dryRunPublications(conns: Conn[], edges: Edge[], tables: TableSpec[]): Promise<Problem[]> {
  const out: Problem[] = [];
  for (const c of conns) {
    for (const e of edges.filter((x) => x.source === c.node.name)) {
      await c.client.query('BEGIN');
      try {
        const name = `pgfleet_dryrun_${process.pid}`;
        try {
          await c.client.query(
            `CREATE PUBLICATION ${quoteIdent(name)} FOR ${publicationTableList(tables, e.target)}`,
          );
        } catch (err) {
          // Find which table's filter the server refused by trying them one by one.
          await c.client.query('ROLLBACK');
          for (const t of tables) {
            await c.client.query('BEGIN');
            try {
              await c.client.query(
                `CREATE PUBLICATION ${quoteIdent(name)} FOR ${publicationTableList([t], e.target)}`,
              );
            } catch (err2) {
              out.push({
                ...problemFrom(c.node.name, `${t.schema}.${t.table}`, err2),
                message: `edge ${e.id}: ${serverReason(err2)}`,
              });
            } finally {
              await c.client.query('ROLLBACK');
            }
          }
          if (!out.some((p) => p.node === c.node.name)) out.push(problemFrom(c.node.name, undefined, err));
          continue;
        }
        for (const t of tables) {
          const f = edgeTableFilter(t, e.target);
          if (!f.rowFilter && !f.columns) continue;
          const q = quoteQualified(t.schema, t.table);
          try {
            await c.client.query('SAVEPOINT s');
            await c.client.query(`DELETE FROM ONLY ${q} WHERE false`);
            await c.client.query('RELEASE SAVEPOINT s');
          } catch (err) {
            await c.client.query('ROLLBACK TO SAVEPOINT s');
            out.push({
              node: c.node.name,
              table: `${t.schema}.${t.table}`,
              message: `edge ${e.id}: ${serverReason(err)}`,
            });
          }
        }
      } finally {
        await c.client.query('ROLLBACK');
      }
    }
  }
  return out;
}

async function create(
  config: ResolvedConfig,
  conns: Conn[],
  edges: Edge[],
  tables: TableSpec[],
  log: Logger | undefined,
): Promise<InitReport> {
  const created = { publications: [] as string[], slots: [] as string[], origins: [] as string[] };
  const undo: Array<() => Promise<unknown>> = [];
  try {
    for (const c of conns) {
      const me = c.node.name;
      await c.client.query('BEGIN');
      try {
        const { rows } = await c.client.query(`SELECT to_regnamespace('pgfleet') IS NOT NULL AS present`);
        const schemaExisted = rows[0].present as boolean;
        for (const ddl of METADATA_DDL) await c.client.query(ddl);
        for (const n of config.nodes) {
          await c.client.query(
            `INSERT INTO pgfleet.nodes (name, rank, is_local) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET rank = EXCLUDED.rank, is_local = EXCLUDED.is_local
             WHERE (pgfleet.nodes.rank, pgfleet.nodes.is_local) IS DISTINCT FROM (EXCLUDED.rank, EXCLUDED.is_local)`,
            [n.name, n.rank, n.name === me],
          );
        }
        const newPubs: string[] = [];
        for (const e of edges.filter((x) => x.source === me)) {
          const list = publicationTableList(tables, e.target);
          const { rows: p } = await c.client.query('SELECT 1 FROM pg_publication WHERE pubname = $1', [
            e.publication,
          ]);
          if (p.length === 0) {
            await c.client.query(`CREATE PUBLICATION ${quoteIdent(e.publication)} FOR ${list}`);
            newPubs.push(e.publication);
          } else if (!(await publicationMatches(c.client, e.publication, list))) {
            await c.client.query(`ALTER PUBLICATION ${quoteIdent(e.publication)} SET ${list}`);
          }
        }
        const newOrigins: string[] = [];
        for (const e of edges.filter((x) => x.target === me)) {
          const o = await createOrigin(c.client, e.origin);
          if (o.created) newOrigins.push(e.origin);
          await ensureOriginWitness(c.client, e.origin);
        }
        await c.client.query('COMMIT');
        created.publications.push(...newPubs.map((p) => `${me}:${p}`));
        created.origins.push(...newOrigins.map((o) => `${me}:${o}`));
        undo.push(async () => {
          await c.client.query('BEGIN');
          for (const p of newPubs) await c.client.query(`DROP PUBLICATION IF EXISTS ${quoteIdent(p)}`);
          for (const o of newOrigins) {
            await dropOrigin(c.client, o, { ifExists: true });
            if (schemaExisted) await forgetOrigin(c.client, o);
          }
          if (!schemaExisted) await c.client.query('DROP SCHEMA IF EXISTS pgfleet CASCADE');
          await c.client.query('COMMIT');
        });
      } catch (err) {
        await c.client.query('ROLLBACK').catch(() => {});
        throw err;
      }
    }
    // Slots last: creating one waits for running transactions and cannot be rolled back.
    for (const e of edges) {
      const c = conns.find((x) => x.node.name === e.source) as Conn;
      // A primary + standby source on 17+ gets failover slots: synchronized to its standby,
      // they survive a promotion (ha/readiness.ts checks the rest of the setup).
      const failover = c.node.servers.length > 0 && (await serverMajor(c.client)) >= 17;
      const slot = await createLogicalSlot(c.client, e.slot, 'pgoutput', { ifNotExists: true, failover });
      if (!slot.created && failover) await makeFailoverSlot(c, e.slot, log);
      if (slot.created) {
        created.slots.push(`${e.source}:${e.slot}`);
        undo.push(() => dropSlot(c.client, e.slot, { ifExists: true }));
      }
      log?.info({ edge: e.id, slot: e.slot, created: slot.created }, 'slot ready');
    }
  } catch (err) {
    log?.error({ err: toPgfleetError(err) }, 'init failed; dropping what this run created');
    for (const u of undo.reverse()) await u().catch(() => {});
    const e = toPgfleetError(err);
    throw new InitError(
      `init failed and was rolled back: ${e.message}`,
      [{ node: String(e.details.node ?? '(unknown)'), message: e.message }],
      {
        cause: err,
      },
    );
  }
  return { edges, tables: tables.map((t) => `${t.schema}.${t.table}`), created };
}

async function serverMajor(client: pg.Client): Promise<number> {
  const { rows } = await client.query(`SELECT current_setting('server_version_num')::int / 10000 AS major`);
  return Number(rows[0].major);
}

/**
 * Turns an existing slot into a failover slot (PostgreSQL 17: ALTER_REPLICATION_SLOT, a
 * replication command). A slot being streamed cannot be altered: stop the replicator for a
 * moment and run init again; `status` shows the node as not failover-ready until then.
 */
async function makeFailoverSlot(c: Conn, slot: string, log: Logger | undefined): Promise<void> {
  const { rows } = await c.client.query('SELECT failover FROM pg_replication_slots WHERE slot_name = $1', [
    slot,
  ]);
  if (rows[0]?.failover !== false) return;
  const repl = await connect(c.node.conninfo, {
    replication: 'database',
    connectTimeoutMs: 5000,
    applicationName: 'pgfleet-mm:init',
  });
  try {
    await repl.query(`ALTER_REPLICATION_SLOT ${quoteIdent(slot)} (FAILOVER true)`);
    log?.info({ node: c.node.name, slot }, 'slot made a failover slot');
  } catch (err) {
    log?.warn(
      { node: c.node.name, slot, err: toPgfleetError(err).message },
      'could not make the slot a failover slot (in use?); stop the replicator briefly and run init again',
    );
  } finally {
    await repl.end().catch(() => {});
  }
}

/**
 * Whether a publication already publishes exactly what `list` describes. The desired
 * definition is created under a temporary name inside a savepoint, so both sides are in
 * the server's normalized form (row filter text, column order), then rolled back.
 */
async function publicationMatches(client: pg.Client, pub: string, list: string): Promise<boolean> {
  const tmp = `pgfleet_cmp_${process.pid}`;
  const q = `SELECT schemaname, tablename, rowfilter, attnames::text AS attnames FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1, 2`;
  await client.query('SAVEPOINT pgfleet_cmp');
  try {
    await client.query(`CREATE PUBLICATION ${quoteIdent(tmp)} FOR ${list}`);
    const [want, have] = await Promise.all([client.query(q, [tmp]), client.query(q, [pub])]);
    return JSON.stringify(want.rows) === JSON.stringify(have.rows);
  } finally {
    await client.query('ROLLBACK TO SAVEPOINT pgfleet_cmp');
  }
}
