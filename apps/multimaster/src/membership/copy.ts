import { quoteIdent, quoteLiteral, quoteQualified } from '@pgfleet/connection';
import { formatLsn, type Lsn } from '@pgfleet/wal';
import type pg from 'pg';
import { commitStatement } from '../apply/statements.js';
import { parsePgMicros, sqlMicros } from '../pg-time.js';
import { APPLY_SESSION_SETTINGS, setStatements, VALUE_TEXT_SETTINGS } from '../session-settings.js';

/** One table to copy, as the edge source → new publishes it. */
export interface CopyTable {
  schema: string;
  table: string;
  /** Columns written (column list of the edge, stored generated columns left out). */
  columns: string[];
  rowFilter?: string;
  /** pg_class.reltuples on the source, for the progress bar (−1 or 0 when unknown). */
  estimatedRows: number;
}

export interface CopyProgress {
  table: string;
  rows: number;
  bytes: number;
  estimatedRows: number;
  done: boolean;
}

export interface CopyOptions {
  /** Source session, inside the REPEATABLE READ transaction that imported the snapshot. */
  reader: pg.Client;
  /**
   * Session on the new node that has `origin` set up (pg_replication_origin_session_setup):
   * add-node holds these for the whole join so no replicator applies into the node meanwhile.
   */
  sessionFor(origin: string): pg.Client;
  tables: CopyTable[];
  /** Origin on the new node for rows last changed through origin id `roident` on the source (0: locally). */
  originFor(roident: number): string;
  /** Origin progress recorded with every copied transaction of that origin. */
  progressFor(origin: string): Lsn;
  onProgress?: (p: CopyProgress) => void;
  signal?: AbortSignal;
  /** Most rows fetched per round trip from the source (default 2000; fewer for wide rows). */
  fetchRows?: number;
  /** Rows per copied transaction (default 1000). */
  groupRows?: number;
  /** SQL text sent to the new node per round trip (default 1 MiB). */
  batchBytes?: number;
}

export interface CopyResult {
  tables: Array<{ table: string; rows: number; bytes: number }>;
  /** Transactions committed on the new node (one per source commit timestamp and origin run). */
  transactions: number;
  /** Newest commit time (µs since 2000) among the copied rows, by the origin they were copied under. */
  newestByOrigin: Map<string, bigint>;
}

/**
 * Rows whose commit timestamp the source no longer knows (frozen, older than commit
 * timestamp retention) get the earliest timestamp PostgreSQL can store after 2000-01-01:
 * every later change wins over them under last_update_wins and loses under
 * first_update_wins, which is how a row with an unknown timestamp is treated anyway.
 */
export const UNKNOWN_COMMIT_TS = '2000-01-01 00:00:00.000001+00';

/**
 * Session settings under which text forms of values round-trip exactly (session-settings.ts),
 * except search_path: row filters are written by users against their own search_path and
 * the reader inlines them into its query.
 */
function withoutSearchPath(settings: Readonly<Record<string, string>>): Record<string, string> {
  const { search_path: _, ...rest } = settings;
  return rest;
}
const READ_SETTINGS = setStatements(withoutSearchPath(VALUE_TEXT_SETTINGS));
const WRITE_SETTINGS = setStatements(withoutSearchPath(APPLY_SESSION_SETTINGS));

interface Sink {
  client: pg.Client;
  sql: string[];
  bytes: number;
}

/**
 * Copies the snapshot into the new node, keeping each row's commit timestamp and origin:
 * consecutive rows of the same source transaction (same commit timestamp and origin) are
 * inserted in one transaction on the new node through that origin, with
 * pg_replication_origin_xact_setup(progress, commit_ts). Conflict resolution on the new
 * node then compares against the same row versions the source compares against, so later
 * changes resolve the same way on every node. Sessions run with session_replication_role
 * = replica (no triggers, no FK checks) and never feed the new node's own slots as local
 * changes. Values travel as text, which round-trips every type exactly.
 */
export async function copySnapshot(o: CopyOptions): Promise<CopyResult> {
  const fetchRows = o.fetchRows ?? 2000;
  const groupRows = o.groupRows ?? 1000;
  const batchBytes = o.batchBytes ?? 1 << 20;
  const sinks = new Map<string, Sink>();
  const result: CopyResult = { tables: [], transactions: 0, newestByOrigin: new Map() };

  const sinkFor = async (origin: string): Promise<Sink> => {
    let s = sinks.get(origin);
    if (s) return s;
    const client = o.sessionFor(origin);
    s = { client, sql: [], bytes: 0 };
    sinks.set(origin, s);
    await client.query(
      `${WRITE_SETTINGS}; SET session_replication_role = replica; SET synchronous_commit = off`,
    );
    return s;
  };
  const flush = async (s: Sink) => {
    if (s.sql.length === 0) return;
    const text = s.sql.join('\n');
    s.sql = [];
    s.bytes = 0;
    await s.client.query(text);
  };

  try {
    await o.reader.query(READ_SETTINGS);
    for (const t of o.tables) {
      o.signal?.throwIfAborted();
      const id = `${t.schema}.${t.table}`;
      const q = quoteQualified(t.schema, t.table);
      const cols = t.columns.map(quoteIdent);
      const inner = `SELECT t.xmin AS "?xmin"${t.columns.map((c, i) => `, t.${quoteIdent(c)}::text AS "${i}"`).join('')} FROM ONLY ${q} AS t${t.rowFilter ? ` WHERE (${t.rowFilter})` : ''}`;
      await o.reader.query(
        `DECLARE pgfleet_copy NO SCROLL CURSOR FOR
           SELECT x.timestamp::text, x.roident::int, ${sqlMicros('x.timestamp')}::text${t.columns.map((_, i) => `, s."${i}"`).join('')}
             FROM (${inner}) AS s LEFT JOIN LATERAL pg_xact_commit_timestamp_origin(s."?xmin") AS x ON true`,
      );
      const insert = `INSERT INTO ${q} (${cols.join(', ')}) OVERRIDING SYSTEM VALUE VALUES `;
      const progress: CopyProgress = {
        table: id,
        rows: 0,
        bytes: 0,
        estimatedRows: t.estimatedRows,
        done: false,
      };
      o.onProgress?.({ ...progress });
      let group: { origin: string; ts: string; values: string[]; bytes: number } | null = null;
      const closeGroup = async () => {
        if (!group || group.values.length === 0) return;
        const s = await sinkFor(group.origin);
        const at = o.progressFor(group.origin);
        const stmt = `BEGIN; ${insert}${group.values.join(', ')}; ${commitStatement(group.origin, formatLsn(at), group.ts)};`;
        s.sql.push(stmt);
        s.bytes += stmt.length;
        result.transactions++;
        group = null;
        if (s.bytes >= batchBytes) await flush(s);
      };
      let want = fetchRows;
      for (;;) {
        o.signal?.throwIfAborted();
        const { rows } = await o.reader.query({
          text: `FETCH ${want} FROM pgfleet_copy`,
          rowMode: 'array',
        });
        for (const r of rows as Array<Array<string | number | null>>) {
          const ts = (r[0] as string | null) ?? UNKNOWN_COMMIT_TS;
          const origin = o.originFor((r[1] as number | null) ?? 0);
          if (
            group &&
            (group.ts !== ts ||
              group.origin !== origin ||
              group.values.length >= groupRows ||
              group.bytes >= batchBytes)
          ) {
            await closeGroup();
          }
          if (!group) {
            // Rows of one group share commit time and origin: the newest is tracked per group.
            group = { origin, ts, values: [], bytes: 0 };
            if (r[2] !== null) {
              const us = parsePgMicros(r[2] as string);
              const newest = result.newestByOrigin.get(origin);
              if (newest === undefined || us > newest) result.newestByOrigin.set(origin, us);
            }
          }
          let bytes = 0;
          const vals: string[] = [];
          for (let i = 3; i < r.length; i++) {
            const v = r[i] as string | null;
            if (v === null) vals.push('NULL');
            else {
              bytes += v.length;
              vals.push(quoteLiteral(v));
            }
          }
          group.values.push(`(${vals.join(', ')})`);
          group.bytes += bytes;
          progress.rows++;
          progress.bytes += bytes;
        }
        o.onProgress?.({ ...progress });
        if (rows.length < want) break;
        // Keep each fetch near 4 × batchBytes whatever the row width (1 MB values exist).
        const avg = progress.bytes / Math.max(1, progress.rows);
        want = Math.max(1, Math.min(fetchRows, Math.floor((4 * batchBytes) / Math.max(1, avg))));
      }
      await closeGroup();
      await o.reader.query('CLOSE pgfleet_copy');
      // Commit this table before the next one starts, so progress reports what is stored.
      for (const s of sinks.values()) await flush(s);
      progress.done = true;
      o.onProgress?.({ ...progress });
      result.tables.push({ table: id, rows: progress.rows, bytes: progress.bytes });
    }
    return result;
  } finally {
    // A batch that failed half-way leaves its session inside an aborted transaction.
    await Promise.all([...sinks.values()].map((s) => s.client.query('ROLLBACK').catch(() => {})));
  }
}
