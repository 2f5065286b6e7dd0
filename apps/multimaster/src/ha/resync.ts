import { connect, quoteIdent, quoteLiteral, quoteQualified } from '@pgfleet/connection';
import { dropSlot, formatLsn, parseLsn, ZERO_LSN } from '@pgfleet/wal';
import type pg from 'pg';
import type { Logger } from 'pino';
import { ERROR_CONFLICT_INSERT_SQL } from '../apply/careful-change.js';
import { committedProgressSql, setUpOrigin } from '../apply/progress-mark.js';
import { type ApplyTable, commitStatement } from '../apply/statements.js';
import { applyTableFor, loadTargetTable } from '../apply/target-table.js';
import type { NodeConfig, ResolvedConfig } from '../config.js';
import type { RelationMessage } from '../decode/messages.js';
import { policyFor } from '../edge.js';
import { createSlotWithSnapshot } from '../membership/exported-snapshot.js';
import { HA_METADATA_DDL } from '../metadata.js';
import { type Edge, nodeOfOrigin, replayOriginName } from '../naming.js';
import { formatPgTimestamp, sqlMicros } from '../pg-time.js';
import { APPLY_SESSION_SETTINGS, VALUE_TEXT_SETTINGS } from '../session-settings.js';
import { claimEdge } from './claim.js';
import { HaError } from './errors.js';
import type { PrimaryTarget } from './primary.js';
import { applyWindowRows, type ResyncApplyContext } from './resync-apply.js';
import { groupByCommit, type WindowRow, windowStart } from './resync-plan.js';

export interface ResyncOptions {
  config: ResolvedConfig;
  /** failed-over node → peer */
  edge: Edge;
  source: PrimaryTarget;
  peer: PrimaryTarget;
  /** server_version_num / 10000 of the source's new primary. */
  sourceMajor: number;
  holder: string;
  logger: Logger;
  signal: AbortSignal;
}

export interface ResyncReport {
  edge: string;
  consistentPoint: string;
  previousProgress: string;
  windowStart: string | null;
  transactions: number;
  rowsSent: number;
  rowsApplied: number;
  rowsSkipped: number;
  conflicts: number;
  rowsFailed: number;
}

/** Creates the HA tables where an older `init` did not. */
export async function ensureHaTables(client: pg.Client): Promise<void> {
  for (const ddl of HA_METADATA_DDL) {
    // Two sessions creating one table at once can collide on its row type (23505): the
    // table exists either way.
    await client.query(ddl).catch((err: { code?: string }) => {
      if (err.code !== '23505') throw err;
    });
  }
}

interface PublishedTable {
  schema: string;
  name: string;
  rowFilter: string | null;
  columns: Array<{ name: string; isKey: boolean }>;
  replicaIdentity: RelationMessage['replicaIdentity'];
}

/**
 * Tables and columns of the edge's publication as pgoutput would send them: published
 * columns (generated ones never are), key columns of the replica identity, the row filter.
 */
async function publishedTables(client: pg.Client, publication: string): Promise<PublishedTable[]> {
  const { rows } = await client.query(
    `SELECT pt.schemaname AS schema, pt.tablename AS name, pt.rowfilter, c.relreplident AS ri,
            (SELECT json_agg(json_build_object('name', a.attname,
                      'isKey', c.relreplident = 'f' OR coalesce(a.attnum = ANY(ix.indkey::int2[]), false))
                    ORDER BY a.attnum)
               FROM pg_attribute a
              WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
                AND a.attname = ANY(pt.attnames)) AS columns
       FROM pg_publication_tables pt
       JOIN pg_class c ON c.oid = format('%I.%I', pt.schemaname, pt.tablename)::regclass
       LEFT JOIN LATERAL (SELECT i.indkey FROM pg_index i
                           WHERE i.indrelid = c.oid
                             AND CASE c.relreplident WHEN 'd' THEN i.indisprimary WHEN 'i' THEN i.indisreplident ELSE false END
                           LIMIT 1) ix ON true
      WHERE pt.pubname = $1 ORDER BY 1, 2`,
    [publication],
  );
  return rows.map((r) => ({
    schema: r.schema as string,
    name: r.name as string,
    rowFilter: (r.rowfilter as string | null) ?? null,
    columns: (r.columns as Array<{ name: string; isKey: boolean }>) ?? [],
    replicaIdentity: r.ri as RelationMessage['replicaIdentity'],
  }));
}

/** Newest commit timestamp (µs) of a row the peer holds through `originId`, across `tables`. */
async function newestFrom(
  peer: pg.Client,
  tables: PublishedTable[],
  originId: number,
): Promise<bigint | null> {
  let newest: bigint | null = null;
  for (const t of tables) {
    const { rows } = await peer.query(
      `SELECT max(${sqlMicros('c.timestamp')})::text AS us
         FROM ONLY ${quoteQualified(t.schema, t.name)} AS t
         CROSS JOIN LATERAL pg_xact_commit_timestamp_origin(t.xmin) AS c
        WHERE c.roident = $1::oid`,
      [originId],
    );
    const us = rows[0]?.us as string | null;
    if (us !== null && us !== undefined && (newest === null || BigInt(us) > newest)) newest = BigInt(us);
  }
  return newest;
}

/** Rows last changed locally on the source (no origin) at or after `start`, inside the snapshot. */
async function windowRows(
  reader: pg.Client,
  tables: PublishedTable[],
  start: bigint | null,
): Promise<WindowRow[]> {
  const out: WindowRow[] = [];
  for (const [i, t] of tables.entries()) {
    const vals = t.columns.map((c) => `s.${quoteIdent(c.name)}::text`).join(', ');
    const inner = `SELECT t.*, t.xmin AS "?xmin" FROM ONLY ${quoteQualified(t.schema, t.name)} AS t${t.rowFilter ? ` WHERE (${t.rowFilter})` : ''}`;
    const { rows } = await reader.query({
      text: `SELECT ${sqlMicros('c.timestamp')}::text AS us, ARRAY[${vals}]::text[] AS vals
               FROM (${inner}) AS s CROSS JOIN LATERAL pg_xact_commit_timestamp_origin(s."?xmin") AS c
              WHERE c.roident = 0 ${start === null ? '' : `AND ${sqlMicros('c.timestamp')} >= $1::int8`}`,
      values: start === null ? [] : [start.toString()],
    });
    for (const r of rows) out.push({ table: i, commitTs: BigInt(r.us as string), values: r.vals });
  }
  return out;
}

/**
 * Carries a failed-over node's window to one peer when the slot of that edge did not
 * survive the failover (PostgreSQL 15/16 have no failover slots; on 17 a slot that was not
 * sync-ready is dropped at promotion). Exactly what it guarantees is in the README ("High
 * availability for a mesh node"). In order:
 *
 * 1. claim the edge on the peer, so no replicator streams it meanwhile and the peer's origin
 *    for the node is free for this session;
 * 2. record the slot as `pending` on the source, then create it with an exported snapshot:
 *    the slot streams every transaction committed after its consistent point, the snapshot
 *    sees exactly those before it;
 * 3. the window starts `ha.resyncMarginMs` before the newest row the peer holds from the
 *    node; every row of the snapshot last changed locally (no origin) since then is sent,
 *    one transaction per source commit timestamp, oldest first, through the edge's own
 *    origin with the row's original commit timestamp: a version the peer already has is
 *    skipped, a row another node changed meets the table's conflict policy;
 * 4. a last transaction on the peer records the re-sync and moves the origin to the
 *    consistent point, then the slot is marked `done`: from there the edge streams.
 *
 * A crash anywhere leaves the slot `pending` (edges wait); the next run drops it and starts
 * over, and what the first run applied is skipped as already there.
 */
export async function resyncEdge(o: ResyncOptions): Promise<ResyncReport> {
  const { edge, config, logger } = o;
  const log = logger.child({ component: 'resync', edge: edge.id });
  const sourceNode = config.nodes.find((n) => n.name === edge.source) as NodeConfig;
  const peerNode = config.nodes.find((n) => n.name === edge.target) as NodeConfig;
  const appName = `pgfleet-mm:resync:${edge.id}`;
  const opts = (settings: Readonly<Record<string, string>>) => ({
    connectTimeoutMs: 5000,
    applicationName: appName,
    settings,
    signal: o.signal,
  });
  const clients: pg.Client[] = [];
  const open = async (conninfo: string, settings: Readonly<Record<string, string>>) => {
    const c = await connect(conninfo, opts(settings));
    c.on('error', () => {});
    clients.push(c);
    return c;
  };
  let exported: Awaited<ReturnType<typeof createSlotWithSnapshot>> | null = null;
  try {
    const peerCtl = await open(o.peer.conninfo, APPLY_SESSION_SETTINGS);
    await ensureHaTables(peerCtl);
    await claimEdge(peerCtl, edge, `${o.holder} re-sync`);
    const src = await open(o.source.conninfo, VALUE_TEXT_SETTINGS);
    await ensureHaTables(src);
    await src.query(
      `INSERT INTO pgfleet.slot_resync (slot, state) VALUES ($1, 'pending')
       ON CONFLICT (slot) DO UPDATE SET state = 'pending', consistent_point = NULL, updated_at = clock_timestamp()`,
      [edge.slot],
    );
    // A slot from an earlier run that did not finish: nobody streamed from it (pending).
    await dropSlot(src, edge.slot, { ifExists: true, force: true });
    exported = await createSlotWithSnapshot(o.source.conninfo, edge.slot, {
      applicationName: `${appName}:slot`,
      failover: o.sourceMajor >= 17 && sourceNode.servers.length > 0,
      signal: o.signal,
    });
    const c = exported.consistentPoint;
    const reader = await open(o.source.conninfo, VALUE_TEXT_SETTINGS);
    await reader.query('BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY');
    await reader.query(`SET TRANSACTION SNAPSHOT ${quoteLiteral(exported.snapshotName)}`);
    const tables = await publishedTables(reader, edge.publication);

    const { rows: origins } = await peerCtl.query(
      'SELECT roident::int AS id, roname AS name FROM pg_replication_origin',
    );
    const originNames = new Map<number, string>(origins.map((r) => [r.id as number, r.name as string]));
    const idOf = (name: string) => origins.find((r) => r.name === name)?.id as number | undefined;
    const originId = idOf(edge.origin);
    if (originId === undefined)
      throw new HaError(
        'RESYNC_FAILED',
        `replication origin ${edge.origin} does not exist on ${edge.target}: run pgfleet-mm init`,
        {
          edge: edge.id,
        },
      );
    const own = new Set(
      [originId, idOf(replayOriginName(edge.source))].filter((x): x is number => x !== undefined),
    );
    const { rows: prog } = await peerCtl.query(`SELECT ${committedProgressSql('$1', true)}::text AS lsn`, [
      edge.origin,
    ]);
    const previous = parseLsn(prog[0].lsn as string);
    const start = windowStart(
      await newestFrom(peerCtl, tables, originId),
      BigInt(config.ha.resyncMarginMs) * 1000n,
    );
    const txs = groupByCommit(await windowRows(reader, tables, start));
    await reader.query('COMMIT');
    await exported.close();
    exported = null;

    const report: ResyncReport = {
      edge: edge.id,
      consistentPoint: formatLsn(c),
      previousProgress: formatLsn(previous),
      windowStart: start === null ? null : formatPgTimestamp(start),
      transactions: txs.length,
      rowsSent: txs.reduce((n, t) => n + t.rows.length, 0),
      rowsApplied: 0,
      rowsSkipped: 0,
      conflicts: 0,
      rowsFailed: 0,
    };
    const db = await open(o.peer.conninfo, APPLY_SESSION_SETTINGS);
    await db.query('SET session_replication_role = replica');
    await setUpOrigin(db, edge.origin, { logger: log });
    const ranks = new Map(config.nodes.map((n) => [n.name, n.rank]));
    const applyTables = new Map<number, ApplyTable>();
    for (const [i, t] of tables.entries()) {
      const rel: RelationMessage = {
        tag: 'relation',
        relationId: i,
        schema: t.schema,
        name: t.name,
        replicaIdentity: t.replicaIdentity,
        columns: t.columns.map((col) => ({ name: col.name, typeOid: 0, typeMod: -1, isKey: col.isKey })),
      };
      applyTables.set(i, applyTableFor(edge, rel, await loadTargetTable(peerCtl, t.schema, t.name)));
    }
    const ctx: ResyncApplyContext = {
      db,
      edge,
      ownOriginIds: own,
      seen: (_commitTs, originId) => own.has(originId),
      sourceRank: sourceNode.rank,
      rankOfOriginId: (id) => {
        if (id === 0) return peerNode.rank;
        const n = nodeOfOrigin(originNames.get(id) ?? '');
        return (n !== null ? ranks.get(n) : undefined) ?? Number.MAX_SAFE_INTEGER;
      },
      originNameOf: (id) => (id === 0 ? `local:${edge.target}` : (originNames.get(id) ?? `origin#${id}`)),
      policyFor: (schema, table) => policyFor(config, schema, table),
      recordErrorConflict: async (values) => {
        await peerCtl.query(ERROR_CONFLICT_INSERT_SQL, values);
      },
      onConflict: (c) => {
        report.conflicts++;
        log.info(c, 'conflict');
      },
      logger: log,
    };
    for (const tx of txs) {
      o.signal.throwIfAborted();
      await db.query('BEGIN');
      const byTable = new Map<number, WindowRow[]>();
      for (const row of tx.rows) byTable.set(row.table, [...(byTable.get(row.table) ?? []), row]);
      for (const [table, rows] of byTable) {
        const t = applyTables.get(table) as ApplyTable;
        const r = await applyWindowRows(ctx, t, rows, { finalLsn: ZERO_LSN, commitTs: tx.commitTs, xid: 0 });
        report.rowsApplied += r.applied;
        report.rowsSkipped += r.skipped;
        report.rowsFailed += r.failed;
      }
      // The origin stays where it was until the last transaction: a crash in between
      // leaves the slot pending and the next run starts over.
      await db.query(commitStatement(edge.origin, formatLsn(previous), formatPgTimestamp(tx.commitTs)));
    }
    await db.query('BEGIN');
    await db.query(
      `INSERT INTO pgfleet.resyncs (edge, source_node, source_server, window_start, previous_progress, consistent_point,
                                    transactions, rows_sent, rows_applied, rows_skipped, conflicts, rows_failed)
       VALUES ($1, $2, $3, $4::timestamptz, $5::pg_lsn, $6::pg_lsn, $7, $8, $9, $10, $11, $12)`,
      [
        edge.id,
        edge.source,
        o.source.server,
        report.windowStart,
        report.previousProgress,
        report.consistentPoint,
        report.transactions,
        report.rowsSent,
        report.rowsApplied,
        report.rowsSkipped,
        report.conflicts,
        report.rowsFailed,
      ],
    );
    await db.query(commitStatement(edge.origin, formatLsn(c), { sql: 'clock_timestamp()' }));
    await src.query(
      `UPDATE pgfleet.slot_resync SET state = 'done', consistent_point = $2::pg_lsn, updated_at = clock_timestamp() WHERE slot = $1`,
      [edge.slot, formatLsn(c)],
    );
    const { edge: _edge, ...fields } = report;
    log.info(fields, 're-sync done: the edge streams from the new slot');
    return report;
  } finally {
    await exported?.close();
    await Promise.all(clients.map((c) => c.end().catch(() => {})));
  }
}
