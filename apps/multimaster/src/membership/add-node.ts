import { connect, quoteIdent, quoteQualified, toPgfleetError } from '@pgfleet/connection';
import { createLogicalSlot, createOrigin, dropSlot, formatLsn, type Lsn, ZERO_LSN } from '@pgfleet/wal';
import type pg from 'pg';
import type { Logger } from 'pino';
import { ensureOriginWitness } from '../apply/progress-mark.js';
import { commitStatement } from '../apply/statements.js';
import type { NodeConfig, ResolvedConfig, TableSpec } from '../config.js';
import { checkNode, compareTables, formatProblems, type NodeFacts, type Problem } from '../init/checks.js';
import { edgeTableFilter, expandTables, gatherFacts, publicationTableList } from '../init/init.js';
import { METADATA_DDL } from '../metadata.js';
import { edgeSlotName, edgesFor, nodeOfOrigin, originName } from '../naming.js';
import { waitSourceCaughtUp } from './catch-up.js';
import { type CopyProgress, type CopyTable, copySnapshot } from './copy.js';
import { MembershipError } from './errors.js';
import { createSlotWithSnapshot, type ExportedSlot } from './exported-snapshot.js';
import { readSourceView, startingSeen, writeStartingSeen } from './join-view.js';
import { holdOrigins, type OriginHold } from './origin-hold.js';
import { chooseCopySource } from './plan.js';
import { dropOriginForce } from './remove-node.js';
import { MEMBERSHIP_DDL, readJoinState } from './state.js';

export type AddNodePhase = 'check' | 'prepare' | 'catch-up' | 'snapshot' | 'copy' | 'finish';

export interface AddNodeProgress {
  phase: AddNodePhase;
  message: string;
  /** Set during `copy`: the table being copied and how far it got. */
  copy?: CopyProgress;
}

export interface AddNodeOptions {
  logger?: Logger;
  signal?: AbortSignal;
  onProgress?: (p: AddNodeProgress) => void;
  /** Existing node to copy from; the first suitable reachable one by default. */
  source?: string;
  /** How long the source may take to apply what the other nodes wrote before the join (default 120 s). */
  catchUpTimeoutMs?: number;
  /** How long to wait for the source's apply sessions to let go of their origins (default 15 s). */
  pauseTimeoutMs?: number;
  connectTimeoutMs?: number;
}

export interface AddNodeReport {
  node: string;
  source: string;
  /** The node had joined before (a re-run): only missing objects were created. */
  alreadyJoined: boolean;
  /** Consistent point of the slot source → node: the copy holds exactly what committed before it. */
  snapshotLsn: string | null;
  /** Where each edge into the node starts: origin progress per source node. */
  startPositions: Record<string, string>;
  tables: Array<{ table: string; rows: number; bytes: number }>;
  transactions: number;
  created: { publications: string[]; slots: string[]; origins: string[] };
}

interface Conn {
  node: NodeConfig;
  client: pg.Client;
}

/** Marks an error raised on purpose so the cleanup wrapper passes it on unchanged. */
function precondition(message: string, details: Record<string, unknown> = {}): MembershipError {
  return new MembershipError('ADD_NODE_PRECONDITION', message, details);
}

/**
 * Joins `newNode` (already listed in `config`, same tables, empty) to a running mesh with
 * no gap and no duplicate:
 *
 * 1. publications and origins for every edge touching the new node; slots other → new on
 *    every existing node except the copy source;
 * 2. wait until the source has applied each other node's changes up to that node's new
 *    slot (so what the source lacks, the new slot still holds);
 * 3. pause the apply of other → source edges by holding their origins on the source, read
 *    their progress, create the slot source → new exporting its snapshot, import it, resume;
 * 4. copy the snapshot (keeping commit timestamps and origins), set the new node's origin
 *    for the source to the slot's consistent point and for each other node to the progress
 *    read in 3, mark the node joined — all before anything streams into it;
 * 5. create the slots new → others and register the node everywhere.
 *
 * A failure before 4 commits drops everything this run created (and the copied rows); a
 * failure after it leaves a joined node that a re-run completes.
 */
export async function addNode(
  config: ResolvedConfig,
  newNode: string,
  opts: AddNodeOptions = {},
): Promise<AddNodeReport> {
  const log = opts.logger?.child({ component: 'add-node', node: newNode });
  const progress = (phase: AddNodePhase, message: string, copy?: CopyProgress) => {
    log?.info({ phase, ...(copy ? { copy } : {}) }, message);
    opts.onProgress?.({ phase, message, ...(copy ? { copy } : {}) });
  };
  const target = config.nodes.find((n) => n.name === newNode);
  if (!target) {
    throw new MembershipError(
      'MEMBERSHIP_INVALID',
      `node "${newNode}" is not in the config: add it to nodes (with its conninfo) first`,
      { node: newNode },
    );
  }
  const existing = config.nodes.filter((n) => n.name !== newNode);
  const connectTimeoutMs = opts.connectTimeoutMs ?? 5000;
  const conns: Conn[] = [];
  try {
    // --- check -----------------------------------------------------------------------
    progress('check', `checking ${config.nodes.length} nodes`);
    const problems: Problem[] = [];
    const results = await Promise.allSettled(
      config.nodes.map((node) =>
        connect(node.conninfo, { connectTimeoutMs, applicationName: 'pgfleet-mm:add-node' }).then(
          (client) => ({ node, client }),
        ),
      ),
    );
    results.forEach((r, i) => {
      const node = config.nodes[i] as NodeConfig;
      if (r.status === 'fulfilled') conns.push(r.value);
      else problems.push({ node: node.name, message: toPgfleetError(r.reason, { node: node.name }).message });
    });
    if (problems.length) {
      throw precondition(`add-node needs every node reachable:\n${formatProblems(problems)}`, { problems });
    }
    const conn = (name: string) => (conns.find((c) => c.node.name === name) as Conn).client;
    const newClient = conn(newNode);
    const edges = edgesFor(config.nodes);
    const schemas = [...new Set(config.tables.map((t) => t.schema))];
    const facts: NodeFacts[] = [];
    for (const c of conns) facts.push(await gatherFacts(c.client, c.node.name, edges, schemas));
    const tables = expandTables(config.tables, facts);
    const wanted = tables.map((t) => ({
      schema: t.schema,
      name: t.table,
      ...(t.columns ? { columns: t.columns } : {}),
    }));
    for (const f of facts) problems.push(...checkNode(f, config.nodes.length, wanted));
    problems.push(...compareTables(facts, wanted));
    if (problems.length) {
      throw precondition(
        `add-node found ${problems.length} problem(s); nothing was changed:\n${formatProblems(problems)}`,
        {
          problems,
        },
      );
    }

    const state = await readJoinState(newClient, newNode);
    if (state?.state === 'joined') {
      progress('finish', `${newNode} already joined (from ${state.source}); completing missing objects`);
      const created = await finishJoin(config, conns, newNode, tables);
      return {
        node: newNode,
        source: state.source,
        alreadyJoined: true,
        snapshotLsn: null,
        startPositions: {},
        tables: [],
        transactions: 0,
        created,
      };
    }
    if (state?.state === 'copying') {
      progress('prepare', `a previous add-node of ${newNode} stopped part-way; undoing it first`);
      await undoJoin(config, conns, newNode, tables, log);
    } else {
      for (const t of tables) {
        const { rows } = await newClient.query(
          `SELECT EXISTS (SELECT 1 FROM ONLY ${quoteQualified(t.schema, t.table)}) AS any`,
        );
        if (rows[0].any) {
          throw precondition(
            `table ${t.schema}.${t.table} on ${newNode} holds rows: add-node copies into empty tables (truncate them first)`,
            { node: newNode, table: `${t.schema}.${t.table}` },
          );
        }
      }
    }

    const choice = chooseCopySource(
      tables,
      existing.map((n) => ({ node: n.name, reachable: true })),
      newNode,
      opts.source,
    );
    if (!choice.source) {
      throw new MembershipError(
        'ADD_NODE_NO_SOURCE',
        `no node can be the copy source for ${newNode}: ${choice.rejected.map((r) => `${r.node}: ${r.reason}`).join('; ')}`,
        { rejected: choice.rejected },
      );
    }
    const source = choice.source;
    const others = existing.filter((n) => n.name !== source).map((n) => n.name);
    log?.info({ source, others }, 'copy source chosen');
    return await join(config, conns, { newNode, source, others, tables }, opts, progress, log);
  } finally {
    await Promise.allSettled(conns.map((c) => c.client.end()));
  }
}

interface JoinPlan {
  newNode: string;
  source: string;
  others: string[];
  tables: TableSpec[];
}

async function join(
  config: ResolvedConfig,
  conns: Conn[],
  plan: JoinPlan,
  opts: AddNodeOptions,
  progress: (phase: AddNodePhase, message: string, copy?: CopyProgress) => void,
  log: Logger | undefined,
): Promise<AddNodeReport> {
  const { newNode, source, others, tables } = plan;
  const conn = (name: string) => (conns.find((c) => c.node.name === name) as Conn).client;
  const newClient = conn(newNode);
  const sourceClient = conn(source);
  const existing = [source, ...others];
  const created = { publications: [] as string[], slots: [] as string[], origins: [] as string[] };
  let hold: OriginHold | null = null;
  let newHold: OriginHold | null = null;
  const target = config.nodes.find((n) => n.name === newNode) as NodeConfig;
  let exported: ExportedSlot | null = null;
  let reader: pg.Client | null = null;
  let joined = false;
  try {
    // --- prepare ----------------------------------------------------------------------
    progress('prepare', `creating publications and origins for ${newNode} (copy source ${source})`);
    await newClient.query('BEGIN');
    for (const ddl of [...METADATA_DDL, MEMBERSHIP_DDL]) await newClient.query(ddl);
    await newClient.query(
      `INSERT INTO pgfleet.membership (node, state, source) VALUES ($1, 'copying', $2)
       ON CONFLICT (node) DO UPDATE SET state = 'copying', source = EXCLUDED.source, started_at = now(), joined_at = NULL`,
      [newNode, source],
    );
    await newClient.query('COMMIT');
    // Leftover slots into the new node (an earlier attempt) go first: nothing may stream
    // into it before its origins are held below.
    for (const x of existing) await dropSlot(conn(x), edgeSlotName(x, newNode), { ifExists: true });
    // Publications before slots: pgoutput looks a publication up in the catalog as of the
    // WAL it decodes, so a slot must never start before its publication exists.
    for (const x of existing) {
      await ensurePublication(
        conn(x),
        edgeSlotName(x, newNode),
        publicationTableList(tables, newNode),
        created,
        x,
        true,
      );
      await ensurePublication(
        newClient,
        edgeSlotName(newNode, x),
        publicationTableList(tables, x),
        created,
        newNode,
        true,
      );
      if ((await createOrigin(conn(x), originName(newNode))).created)
        created.origins.push(`${x}:${originName(newNode)}`);
      if ((await createOrigin(newClient, originName(x))).created)
        created.origins.push(`${newNode}:${originName(x)}`);
      await ensureOriginWitness(conn(x), originName(newNode));
      await ensureOriginWitness(newClient, originName(x));
    }
    // Hold every origin on the new node until it has joined: a replicator already running
    // with the grown config cannot apply into it (its sessions fail to set the origin up
    // and retry), and the copy commits through these very sessions.
    newHold = await holdOrigins(target.conninfo, existing.map(originName), {
      timeoutMs: opts.pauseTimeoutMs ?? 15_000,
      ...(log ? { logger: log } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
    });

    // Fresh slots into the new node: their start decides what the copy must hold.
    const slotStart = new Map<string, Lsn>();
    for (const x of others) {
      const s = await createLogicalSlot(conn(x), edgeSlotName(x, newNode), 'pgoutput');
      created.slots.push(`${x}:${s.name}`);
      slotStart.set(x, s.consistentLsn);
    }

    // --- catch-up ---------------------------------------------------------------------
    for (const x of others) {
      progress(
        'catch-up',
        `waiting for ${source} to apply ${x}'s changes up to ${formatLsn(slotStart.get(x) as Lsn)}`,
      );
      const verdict = await waitSourceCaughtUp({
        other: x,
        source,
        slotStart: slotStart.get(x) as Lsn,
        sourceClient,
        otherClient: conn(x),
        timeoutMs: opts.catchUpTimeoutMs ?? 120_000,
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
      if (!verdict.ok) {
        throw new MembershipError(
          'ADD_NODE_SOURCE_BEHIND',
          `${source} has not applied ${x}'s changes up to ${formatLsn(slotStart.get(x) as Lsn)} (${verdict.reason}): keep \`pgfleet-mm run\` running for the current mesh while adding a node, or pick another --source`,
          { source, other: x },
        );
      }
      log?.info({ other: x, via: verdict.via }, 'source caught up');
    }

    // --- snapshot ---------------------------------------------------------------------
    progress(
      'snapshot',
      `pausing apply into ${source} from ${others.join(', ') || '(none)'} and exporting a snapshot`,
    );
    hold = await holdOrigins(
      config.nodes.find((n) => n.name === source)?.conninfo as string,
      others.map(originName),
      {
        timeoutMs: opts.pauseTimeoutMs ?? 15_000,
        ...(log ? { logger: log } : {}),
        ...(opts.signal ? { signal: opts.signal } : {}),
      },
    );
    const held = await hold.progress();
    const startAt = new Map<string, Lsn>();
    for (const x of others) startAt.set(x, held.get(originName(x)) ?? ZERO_LSN);
    exported = await createSlotWithSnapshot(
      config.nodes.find((n) => n.name === source)?.conninfo as string,
      edgeSlotName(source, newNode),
      opts.signal ? { signal: opts.signal } : {},
    );
    created.slots.push(`${source}:${exported.slot}`);
    startAt.set(source, exported.consistentPoint);
    reader = await connect(config.nodes.find((n) => n.name === source)?.conninfo as string, {
      applicationName: 'pgfleet-mm:add-node:read',
      connectTimeoutMs: 5000,
    });
    await reader.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    await reader.query(`SET TRANSACTION SNAPSHOT '${exported.snapshotName.replaceAll("'", "''")}'`);
    await exported.close();
    await hold.release();
    hold = null;
    log?.info(
      {
        snapshotLsn: formatLsn(exported.consistentPoint),
        starts: Object.fromEntries([...startAt].map(([k, v]) => [k, formatLsn(v)])),
      },
      'snapshot imported; apply into the source resumed',
    );

    // --- copy -------------------------------------------------------------------------
    const originIds = new Map<number, string>(
      (await reader.query('SELECT roident::int AS id, roname AS name FROM pg_replication_origin')).rows.map(
        (r) => [r.id as number, r.name as string],
      ),
    );
    const members = new Set(existing);
    const originFor = (roident: number): string => {
      const node = roident === 0 ? null : nodeOfOrigin(originIds.get(roident) ?? '');
      // Rows from nodes no longer (or never) in the mesh are attributed to the source.
      return originName(node !== null && members.has(node) ? node : source);
    };
    const view = await readSourceView(reader, source, others);
    const copyTables = await copyPlan(reader, newClient, tables, newNode);
    const result = await copySnapshot({
      reader,
      sessionFor: (origin) => (newHold as OriginHold).sessions.get(origin) as pg.Client,
      tables: copyTables,
      originFor,
      progressFor: (origin) => startAt.get(nodeOfOrigin(origin) ?? source) ?? ZERO_LSN,
      onProgress: (p) => progress('copy', `${p.table}: ${p.rows} rows${p.done ? ' (done)' : ''}`, p),
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    await reader.query('COMMIT');

    // --- finish -----------------------------------------------------------------------
    progress('finish', `setting where each edge into ${newNode} starts and marking it joined`);
    // Each origin's start commits through its own held session (pg_replication_origin_advance
    // is refused while a session has the origin set up), then the node is marked joined.
    for (const [x, lsn] of startAt) {
      const session = (newHold as OriginHold).sessions.get(originName(x)) as pg.Client;
      await session.query('BEGIN');
      await session.query('SET LOCAL synchronous_commit = on');
      await session.query(
        `UPDATE pgfleet.membership SET origins = origins || jsonb_build_object($2::text, $3::text) WHERE node = $1`,
        [newNode, x, formatLsn(lsn)],
      );
      await session.query(commitStatement(originName(x), formatLsn(lsn), { sql: 'now()' }));
    }
    const starts = Object.fromEntries([...startAt].map(([k, v]) => [k, formatLsn(v)]));
    // The new node knows the mesh, and what the source had seen, before its origins are given
    // back: an edge session into it reads both once, when it starts (edge-session.ts). Its
    // floor is the source's, since the copy holds the source's versions (join-view.ts).
    await registerNodes(newClient, config, newNode, view.floor);
    await writeStartingSeen(newClient, startingSeen(newNode, source, others, view, result.newestByOrigin));
    await newClient.query(
      `UPDATE pgfleet.membership SET state = 'joined', joined_at = now(), snapshot_lsn = $2::pg_lsn WHERE node = $1`,
      [newNode, formatLsn(exported.consistentPoint)],
    );
    await (newHold as OriginHold).release();
    newHold = null;
    joined = true;
    const more = await finishJoin(config, conns, newNode, tables);
    created.slots.push(...more.slots);
    created.publications.push(...more.publications);
    created.origins.push(...more.origins);
    progress(
      'finish',
      `${newNode} joined: ${result.tables.reduce((n, t) => n + t.rows, 0)} rows copied from ${source}`,
    );
    return {
      node: newNode,
      source,
      alreadyJoined: false,
      snapshotLsn: formatLsn(exported.consistentPoint),
      startPositions: starts,
      tables: result.tables,
      transactions: result.transactions,
      created,
    };
  } catch (err) {
    await hold?.release();
    await newHold?.release();
    await exported?.close();
    if (reader) await reader.query('ROLLBACK').catch(() => {});
    if (joined) {
      throw new MembershipError(
        'ADD_NODE_FAILED',
        `${newNode} joined, but creating its outgoing slots or registry rows failed: ${toPgfleetError(err).message}; run add-node again to complete`,
        { node: newNode, joined: true },
        { cause: err },
      );
    }
    log?.error({ err: toPgfleetError(err) }, 'add-node failed; undoing what it created');
    let undone = true;
    await newClient.query('ROLLBACK').catch(() => {});
    await undoJoin(config, conns, newNode, tables, log).catch((e: unknown) => {
      undone = false;
      log?.error({ err: toPgfleetError(e) }, 'undo failed');
    });
    if (err instanceof MembershipError) throw err;
    const e = toPgfleetError(err);
    throw new MembershipError(
      'ADD_NODE_FAILED',
      `add-node ${newNode} failed: ${e.message}; ${undone ? 'everything it created was dropped again' : `cleanup was incomplete: run remove-node ${newNode}`}`,
      { node: newNode, undone },
      { cause: err },
    );
  } finally {
    await reader?.end().catch(() => {});
  }
}

async function ensurePublication(
  client: pg.Client,
  name: string,
  list: string,
  created: { publications: string[] },
  node: string,
  replace: boolean,
): Promise<void> {
  const { rows } = await client.query('SELECT 1 FROM pg_publication WHERE pubname = $1', [name]);
  if (rows.length === 0) {
    await client.query(`CREATE PUBLICATION ${quoteIdent(name)} FOR ${list}`);
    created.publications.push(`${node}:${name}`);
  } else if (replace) {
    // Left over from an earlier attempt: make it publish what the config says now.
    await client.query(`ALTER PUBLICATION ${quoteIdent(name)} SET ${list}`);
  }
}

/** What to copy per table: the edge source → new's column list and row filter, minus generated columns. */
async function copyPlan(
  reader: pg.Client,
  newClient: pg.Client,
  tables: TableSpec[],
  newNode: string,
): Promise<CopyTable[]> {
  const out: CopyTable[] = [];
  for (const t of tables) {
    const q = quoteQualified(t.schema, t.table);
    const { rows } = await newClient.query(
      `SELECT a.attname AS name FROM pg_attribute a
        WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' ORDER BY a.attnum`,
      [q],
    );
    const f = edgeTableFilter(t, newNode);
    const columns = (rows as Array<{ name: string }>)
      .map((r) => r.name)
      .filter((c) => !f.columns || f.columns.includes(c));
    const { rows: est } = await reader.query(
      'SELECT reltuples::float8 AS n FROM pg_class WHERE oid = $1::regclass',
      [q],
    );
    out.push({
      schema: t.schema,
      table: t.table,
      columns,
      ...(f.rowFilter ? { rowFilter: f.rowFilter } : {}),
      estimatedRows: Math.max(0, Math.round(Number(est[0]?.n ?? 0))),
    });
  }
  return out;
}

/** Slots new → others (after the copy: the copy itself must never stream out) and registry rows. */
async function finishJoin(
  config: ResolvedConfig,
  conns: Conn[],
  newNode: string,
  tables: TableSpec[],
): Promise<{ publications: string[]; slots: string[]; origins: string[] }> {
  const created = { publications: [] as string[], slots: [] as string[], origins: [] as string[] };
  const conn = (name: string) => (conns.find((c) => c.node.name === name) as Conn).client;
  const newClient = conn(newNode);
  for (const n of config.nodes) {
    if (n.name === newNode) continue;
    await ensurePublication(
      conn(n.name),
      edgeSlotName(n.name, newNode),
      publicationTableList(tables, newNode),
      created,
      n.name,
      false,
    );
    await ensurePublication(
      newClient,
      edgeSlotName(newNode, n.name),
      publicationTableList(tables, n.name),
      created,
      newNode,
      false,
    );
    if ((await createOrigin(conn(n.name), originName(newNode))).created)
      created.origins.push(`${n.name}:${originName(newNode)}`);
    if ((await createOrigin(newClient, originName(n.name))).created)
      created.origins.push(`${newNode}:${originName(n.name)}`);
    await ensureOriginWitness(conn(n.name), originName(newNode));
    await ensureOriginWitness(newClient, originName(n.name));
    const s = await createLogicalSlot(newClient, edgeSlotName(newNode, n.name), 'pgoutput', {
      ifNotExists: true,
    });
    if (s.created) created.slots.push(`${newNode}:${s.name}`);
  }
  for (const c of conns) await registerNodes(c.client, config, c.node.name);
  return created;
}

/**
 * Every node of the mesh in `me`'s pgfleet.nodes, `me` marked local (what init writes); a
 * new row for `me` is registered at `floor` when given (the copy source's), else now.
 */
async function registerNodes(
  client: pg.Client,
  config: ResolvedConfig,
  me: string,
  floor: string | null = null,
): Promise<void> {
  for (const n of config.nodes) {
    await client.query(
      `INSERT INTO pgfleet.nodes (name, rank, is_local, registered_at) VALUES ($1, $2, $3, coalesce($4::timestamptz, now()))
       ON CONFLICT (name) DO UPDATE SET rank = EXCLUDED.rank, is_local = EXCLUDED.is_local
       WHERE (pgfleet.nodes.rank, pgfleet.nodes.is_local) IS DISTINCT FROM (EXCLUDED.rank, EXCLUDED.is_local)`,
      [n.name, n.rank, n.name === me, n.name === me ? floor : null],
    );
  }
}

/**
 * Drops every object of a join that did not finish: slots, publications and origins of the
 * edges touching the new node, its registry rows, and the rows it copied (the tables were
 * empty when the join began, which the `copying` state records).
 */
async function undoJoin(
  config: ResolvedConfig,
  conns: Conn[],
  newNode: string,
  tables: TableSpec[],
  log: Logger | undefined,
): Promise<void> {
  const conn = (name: string) => (conns.find((c) => c.node.name === name) as Conn).client;
  const newClient = conn(newNode);
  for (const n of config.nodes) {
    if (n.name === newNode) continue;
    const c = conn(n.name);
    await dropSlot(c, edgeSlotName(n.name, newNode), { ifExists: true, force: true });
    await c.query(`DROP PUBLICATION IF EXISTS ${quoteIdent(edgeSlotName(n.name, newNode))}`);
    await dropOriginForce(c, originName(newNode));
    await c.query('DELETE FROM pgfleet.nodes WHERE name = $1', [newNode]).catch(() => {});
    await dropSlot(newClient, edgeSlotName(newNode, n.name), { ifExists: true, force: true });
    await newClient.query(`DROP PUBLICATION IF EXISTS ${quoteIdent(edgeSlotName(newNode, n.name))}`);
    await dropOriginForce(newClient, originName(n.name));
  }
  if (tables.length) {
    await newClient.query(
      `BEGIN; SET LOCAL session_replication_role = replica; TRUNCATE ONLY ${tables.map((t) => quoteQualified(t.schema, t.table)).join(', ')}; COMMIT`,
    );
  }
  await newClient.query(`DELETE FROM pgfleet.membership WHERE node = $1`, [newNode]).catch(() => {});
  await newClient.query(`DELETE FROM pgfleet.nodes`).catch(() => {});
  log?.info('partial join undone');
}
