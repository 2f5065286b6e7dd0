import { connect, sqlStateOf } from '@pgfleet/connection';
import { parseLsn } from '@pgfleet/wal';
import type pg from 'pg';
import pino, { type Logger } from 'pino';
import {
  applyChangeCarefully,
  type CarefulApplyContext,
  ERROR_CONFLICT_INSERT_SQL,
} from '../apply/careful-change.js';
import { setUpOrigin } from '../apply/progress-mark.js';
import { type ApplyTable, commitStatement, truncateStatement } from '../apply/statements.js';
import { loadTargetTable, type TargetColumn, type TargetTable } from '../apply/target-table.js';
import type { ResolvedConfig } from '../config.js';
import type { ConflictKind, Resolution } from '../conflict.js';
import {
  type DeleteMessage,
  type InsertMessage,
  type Tuple,
  UNCHANGED_TOAST,
  type UpdateMessage,
} from '../decode/messages.js';
import { policyFor } from '../edge.js';
import { edgesFor, findEdge, nodeOfOrigin, replayOriginName } from '../naming.js';
import { formatPgTimestamp, sqlMicros } from '../pg-time.js';
import { APPLY_SESSION_SETTINGS } from '../session-settings.js';
import { ReplayError } from './errors.js';

export { ReplayError };

export interface ReplayReport {
  node: string;
  id: string;
  edge: string;
  commitLsn: string;
  changes: number;
  /** Conflicts met and resolved under the tables' policies (recorded in pgfleet.conflicts). */
  conflicts: Array<{ table: string; kind: ConflictKind; resolution: Resolution }>;
  /**
   * Later changes of the replayed rows that this node skipped while the transaction was
   * missing (update_missing / delete_missing in pgfleet.conflicts, newer than it). A replay
   * does not re-apply them: where there are any, run `check` and repair what it names.
   */
  laterChangesSkipped: number;
}

export interface ReplayOptions {
  logger?: Logger;
  connectTimeoutMs?: number;
}

interface Header {
  edge: string;
  action: string;
  resolved: string | null;
  commit_lsn: string;
  end_lsn: string;
  xid: string;
  commit_us: string;
}

interface StoredChange {
  seq: number;
  table_schema: string | null;
  table_name: string | null;
  kind: 'insert' | 'update' | 'delete' | 'truncate';
  old: Record<string, string | null> | null;
  new: Record<string, unknown> | null;
}

const SKIPPED_ACTIONS = new Set(['skip_change', 'skip_transaction', 'skipped_by_operator']);

/**
 * Applies a skipped transaction recorded in pgfleet.dead_letters on its node, as its source
 * transaction would have been applied: change by change under each table's conflict policy
 * (conflicts detected against the rows as they are now, resolved with the source's commit
 * timestamp and rank, recorded), in one transaction that carries the source's commit
 * timestamp and marks the dead letter `replayed`. Anything refused rolls all of it back.
 *
 * The running replicator holds the edge's own origin, so the replay writes through the
 * source's replay origin (replayOriginName): its rows are not sent on as this node's own
 * changes, and the edge treats them as the source's.
 */
export async function replayDeadLetter(
  config: ResolvedConfig,
  nodeName: string,
  id: string,
  opts: ReplayOptions = {},
): Promise<ReplayReport> {
  const node = config.nodes.find((n) => n.name === nodeName);
  if (!node) throw new ReplayError(`no node "${nodeName}" in the config`, { node: nodeName });
  if (!/^\d+$/.test(id)) throw new ReplayError(`dead letter id must be a number, got "${id}"`, { id });
  const logger = (opts.logger ?? pino({ level: 'silent' })).child({ component: 'replay', node: nodeName });
  const connectOpts = {
    connectTimeoutMs: opts.connectTimeoutMs ?? 5000,
    applicationName: 'pgfleet-mm:replay',
    settings: APPLY_SESSION_SETTINGS,
  };
  const db = await connect(node.conninfo, connectOpts);
  let control: pg.Client | null = null;
  try {
    const header = await readHeader(db, id, nodeName);
    const edge = findEdge(edgesFor(config.nodes), header.edge);
    if (!edge || edge.target !== nodeName) {
      throw new ReplayError(
        `dead letter ${nodeName}:${id} belongs to edge ${header.edge}, which is not in the config`,
        {
          edge: header.edge,
        },
      );
    }
    control = await connect(node.conninfo, connectOpts);
    const replayOrigin = replayOriginName(edge.source);
    await db.query(
      `SELECT pg_replication_origin_create($1) WHERE NOT EXISTS (SELECT 1 FROM pg_replication_origin WHERE roname = $1)`,
      [replayOrigin],
    );
    const { rows: origins } = await db.query(
      'SELECT roident::int AS id, roname AS name FROM pg_replication_origin',
    );
    const originNames = new Map<number, string>(origins.map((r) => [r.id as number, r.name as string]));
    const ranks = new Map(config.nodes.map((n) => [n.name, n.rank]));
    const own = new Set(
      origins.filter((r) => r.name === edge.origin || r.name === replayOrigin).map((r) => r.id as number),
    );
    await db.query('SET session_replication_role = replica');
    try {
      // Through setUpOrigin like every session that names progress: its commits leave the
      // witness (apply/progress-mark.ts).
      await setUpOrigin(db, replayOrigin, { timeoutMs: 0 });
    } catch (err) {
      throw new ReplayError(
        `replication origin ${replayOrigin} on ${nodeName} is busy (another replay of ${edge.source}'s dead letters is running?): ${(err as Error).message}`,
        { node: nodeName, origin: replayOrigin },
        { cause: err },
      );
    }
    const conflicts: ReplayReport['conflicts'] = [];
    const ctl = control;
    const ctx: CarefulApplyContext = {
      db,
      edge,
      // The source's view when it wrote the transaction is long gone: every row last written
      // by another node counts as a conflict, resolved with the source's commit time and rank.
      seen: (_ts, originId) => own.has(originId),
      sourceRank: ranks.get(edge.source) ?? Number.MAX_SAFE_INTEGER,
      rankOfOriginId: (oid) => {
        if (oid === 0) return node.rank;
        const n = nodeOfOrigin(originNames.get(oid) ?? '');
        return (n !== null ? ranks.get(n) : undefined) ?? Number.MAX_SAFE_INTEGER;
      },
      originNameOf: (oid) => (oid === 0 ? `local:${nodeName}` : (originNames.get(oid) ?? `origin#${oid}`)),
      policyFor: (schema, table) => policyFor(config, schema, table),
      recordErrorConflict: async (values) => {
        await ctl.query(ERROR_CONFLICT_INSERT_SQL, values);
      },
      onConflict: () => {},
      logger,
    };
    const tx = {
      finalLsn: parseLsn(header.commit_lsn),
      commitTs: BigInt(header.commit_us),
      xid: Number(header.xid),
    };
    let changes = 0;
    const replayedKeys = new Map<string, { schema: string; name: string; keys: Set<string> }>();
    await db.query('BEGIN');
    try {
      // Locks the row: two replays of one dead letter never both apply it.
      const again = await readHeader(db, id, nodeName, true);
      const tables = new Map<string, TargetTable>();
      const target = async (schema: string, name: string): Promise<TargetTable> => {
        const key = `${schema}.${name}`;
        let tt = tables.get(key);
        if (!tt) {
          const loaded = await loadTargetTable(db, schema, name);
          if (!loaded) throw new ReplayError(`table ${key} does not exist on ${nodeName}`, { table: key });
          tt = loaded;
          tables.set(key, tt);
        }
        return tt;
      };
      await db.query(
        `DECLARE pgfleet_replay NO SCROLL CURSOR FOR
           SELECT seq, table_schema, table_name, kind, old, new FROM pgfleet.dead_letter_changes
            WHERE dead_letter_id = $1::int8 ORDER BY seq`,
        [id],
      );
      for (;;) {
        const { rows } = await db.query('FETCH 200 FROM pgfleet_replay');
        // Each change is applied before the next batch is read; conflicts go to pgfleet.conflicts.
        for (const c of rows as StoredChange[]) {
          changes++;
          try {
            if (c.kind === 'truncate') {
              const rel = (c.new?.relations ?? []) as Array<{ schema: string; name: string }>;
              const ts: ApplyTable[] = [];
              for (const r of rel) {
                await target(r.schema, r.name);
                ts.push({ schema: r.schema, name: r.name, columns: [], keyIndexes: [], identityFull: false });
              }
              await db.query(
                truncateStatement(ts, {
                  cascade: c.new?.cascade === true,
                  restartIdentity: c.new?.restartIdentity === true,
                }),
              );
              continue;
            }
            const schema = c.table_schema as string;
            const name = c.table_name as string;
            const { table, msg } = replayedChange(schema, name, await target(schema, name), c);
            const tk = replayedKeys.get(`${schema}.${name}`) ?? { schema, name, keys: new Set<string>() };
            replayedKeys.set(`${schema}.${name}`, tk);
            for (const img of [c.old, c.new]) {
              if (img && !table.identityFull)
                tk.keys.add(
                  JSON.stringify(
                    Object.fromEntries(
                      table.keyIndexes.map((i) => [
                        table.columns[i]?.name,
                        img[table.columns[i]?.name as string] ?? null,
                      ]),
                    ),
                  ),
                );
            }
            await applyChangeCarefully(
              {
                ...ctx,
                onConflict: (c) => {
                  conflicts.push({ table: c.table, kind: c.kind, resolution: c.resolution });
                  logger.info(c, 'conflict');
                },
              },
              tx,
              table,
              msg,
            );
          } catch (err) {
            if (err instanceof ReplayError) throw err;
            throw new ReplayError(
              `dead letter ${nodeName}:${id}, change ${c.seq} (${c.kind} on ${c.table_schema}.${c.table_name}) was refused again, nothing was replayed: ${(err as Error).message}`,
              { node: nodeName, id, seq: c.seq, sqlState: sqlStateOf(err) },
              { cause: err },
            );
          }
        }
        if (rows.length < 200) break;
      }
      await db.query('CLOSE pgfleet_replay');
      await db.query(
        `UPDATE pgfleet.dead_letters SET resolved = 'replayed', resolved_at = clock_timestamp() WHERE id = $1::int8`,
        [id],
      );
      // The replayed rows carry the source transaction's commit timestamp, as if the edge
      // had applied them: conflict resolution on later changes sees the same version here as
      // on every other node.
      await db.query(commitStatement(replayOrigin, again.end_lsn, formatPgTimestamp(tx.commitTs)));
    } catch (err) {
      await db.query('ROLLBACK').catch(() => {});
      throw err;
    }
    let laterChangesSkipped = 0;
    for (const { schema, name, keys } of replayedKeys.values()) {
      const { rows } = await db.query(
        `SELECT count(*)::int AS n FROM pgfleet.conflicts
          WHERE table_schema = $1 AND table_name = $2 AND kind IN ('update_missing', 'delete_missing')
            AND remote_commit_ts > $3::timestamptz AND key = ANY($4::jsonb[])`,
        [schema, name, formatPgTimestamp(tx.commitTs), [...keys]],
      );
      laterChangesSkipped += rows[0]?.n ?? 0;
    }
    logger.info(
      { id, edge: edge.id, changes, conflicts: conflicts.length, laterChangesSkipped },
      'dead letter replayed',
    );
    return {
      node: nodeName,
      id,
      edge: edge.id,
      commitLsn: header.commit_lsn,
      changes,
      conflicts,
      laterChangesSkipped,
    };
  } finally {
    await db.end().catch(() => {});
    await control?.end().catch(() => {});
  }
}

async function readHeader(db: pg.Client, id: string, node: string, lock = false): Promise<Header> {
  const { rows } = await db.query(
    `SELECT edge, action, resolved, commit_lsn::text, end_lsn::text, xid::text, ${sqlMicros('commit_ts')}::text AS commit_us
       FROM pgfleet.dead_letters WHERE id = $1::int8${lock ? ' FOR UPDATE' : ''}`,
    [id],
  );
  const h = rows[0] as Header | undefined;
  if (!h) throw new ReplayError(`no dead letter ${node}:${id}`, { node, id });
  if (h.resolved !== null)
    throw new ReplayError(`dead letter ${node}:${id} is already resolved (${h.resolved})`, { node, id });
  if (h.action === 'pause') {
    throw new ReplayError(
      `dead letter ${node}:${id} is the transaction edge ${h.edge} is paused on: fix the cause and the edge applies it by itself, or skip it (pgfleet-mm skip --edge ${h.edge} --lsn ${h.commit_lsn}) and replay the skipped record`,
      { node, id },
    );
  }
  if (!SKIPPED_ACTIONS.has(h.action))
    throw new ReplayError(`dead letter ${node}:${id} has action ${h.action}: nothing to replay`, {
      node,
      id,
    });
  return h;
}

/**
 * The recorded change as the apply sees a pgoutput change: a table of the columns the
 * change names (in the target's column order) keyed on the target's row key, and tuples
 * of their text values; columns the source sent as unchanged TOAST stay unchanged.
 */
export function replayedChange(
  schema: string,
  name: string,
  target: TargetTable,
  c: Pick<StoredChange, 'kind' | 'old' | 'new'>,
): { table: ApplyTable; msg: InsertMessage | UpdateMessage | DeleteMessage } {
  const named = new Set([...Object.keys(c.old ?? {}), ...Object.keys(c.new ?? {})]);
  for (const n of named) {
    if (!target.columns.has(n))
      throw new ReplayError(`column "${n}" of ${schema}.${name} no longer exists on the target`, {
        table: `${schema}.${name}`,
        column: n,
      });
  }
  const names = [...target.columns.keys()].filter((n) => named.has(n));
  const key: string[] | null = target.uniqueKey?.every((k) => named.has(k)) ? target.uniqueKey : null;
  const columns = names.map((n) => {
    const tc = target.columns.get(n) as TargetColumn;
    return { name: n, type: tc.type, isKey: key ? key.includes(n) : true, identityAlways: tc.identityAlways };
  });
  const table: ApplyTable = {
    schema,
    name,
    columns,
    keyIndexes: key ? key.map((k) => names.indexOf(k)) : names.map((_, i) => i),
    identityFull: key === null,
    unsentColumns: [...target.columns].flatMap(([n, tc]) => (named.has(n) || tc.generated ? [] : [n])),
  };
  const tuple = (img: Record<string, unknown> | null, missing: null | typeof UNCHANGED_TOAST): Tuple =>
    names.map((n) => (img && n in img ? (img[n] as string | null) : missing));
  const old = c.old === null ? null : tuple(c.old, null);
  const msg: InsertMessage | UpdateMessage | DeleteMessage =
    c.kind === 'insert'
      ? { tag: 'insert', relationId: 0, newTuple: tuple(c.new, null) }
      : c.kind === 'update'
        ? { tag: 'update', relationId: 0, key: null, old, newTuple: tuple(c.new, UNCHANGED_TOAST) }
        : { tag: 'delete', relationId: 0, key: null, old };
  return { table, msg };
}

/** `12`, or `b:12` (node:id, as `dead-letters` lists them). */
export function parseDeadLetterRef(
  text: string,
  node: string | undefined,
): { node: string; id: string } | null {
  const m = /^(?:([a-z0-9_]+):)?(\d+)$/.exec(text);
  if (!m) return null;
  const n = m[1] ?? node;
  return n ? { node: n, id: m[2] as string } : null;
}
