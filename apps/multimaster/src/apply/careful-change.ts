import { formatLsn, type Lsn } from '@pgfleet/wal';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { ConflictPolicy } from '../config.js';
import {
  type ConflictKind,
  type LocalRowVersion,
  type RecordedConflict,
  resolveConflict,
} from '../conflict.js';
import {
  type DeleteMessage,
  type InsertMessage,
  UNCHANGED_TOAST,
  type UpdateMessage,
} from '../decode/messages.js';
import type { Edge } from '../naming.js';
import { formatPgTimestamp } from '../pg-time.js';
import { ConflictError } from './errors.js';
import {
  type ApplyTable,
  assignableIndexes,
  deleteByCtidStatement,
  insertOneStatement,
  lookupStatement,
  moveRowStatement,
  updateByCtidStatement,
} from './statements.js';
import { changeImage, keyChanged, oldTuple, textOf } from './tuples.js';

/** Parameters: see conflictValues in applyChangeCarefully. */
export const CONFLICT_INSERT_SQL = `INSERT INTO pgfleet.conflicts (edge, source_node, target_node, table_schema, table_name, kind, policy, resolution, reason, key, local_row, remote_row,
                                  local_commit_ts, local_origin, remote_commit_ts, remote_commit_lsn, remote_xid)
   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11::jsonb, $12::jsonb, $13::timestamptz, $14, $15::timestamptz, $16::pg_lsn, $17)`;

/**
 * Same row, unless this very conflict (edge, transaction, kind, key) was recorded with
 * resolution `error` already: a paused edge retries the transaction again and again.
 */
export const ERROR_CONFLICT_INSERT_SQL = `INSERT INTO pgfleet.conflicts (edge, source_node, target_node, table_schema, table_name, kind, policy, resolution, reason, key, local_row, remote_row,
                                  local_commit_ts, local_origin, remote_commit_ts, remote_commit_lsn, remote_xid)
   SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11::jsonb, $12::jsonb, $13::timestamptz, $14, $15::timestamptz, $16::pg_lsn, $17
    WHERE NOT EXISTS (SELECT 1 FROM pgfleet.conflicts
                       WHERE edge = $1 AND remote_commit_lsn = $16::pg_lsn AND kind = $6 AND key = $10::jsonb AND resolution = 'error')`;

/** The source transaction a change belongs to. */
export interface RemoteTransaction {
  finalLsn: Lsn;
  /** Source commit timestamp, µs since 2000-01-01. */
  commitTs: bigint;
  xid: number;
}

/** Everything the row-by-row apply needs besides the change itself. */
export interface CarefulApplyContext {
  /** Inside the apply transaction, origin set up, session_replication_role = replica. */
  db: pg.Client;
  edge: Edge;
  /**
   * Whether the source had seen a local row version (commit time µs since 2000, or null when
   * unknown; origin id, 0 for the target's own writes) before it wrote the change: then the
   * change does not race with it (README "Conflicts"; versionSeen in seen.ts).
   */
  seen(commitTs: bigint | null, originId: number): boolean;
  sourceRank: number;
  /** Rank of the node that made a row's last change, from its replication origin id (0 = the target itself). */
  rankOfOriginId(id: number): number;
  originNameOf(id: number): string;
  policyFor(schema: string, table: string): ConflictPolicy;
  /** Records a conflict resolved as `error` outside the apply transaction (which is rolled back). */
  recordErrorConflict(values: unknown[]): Promise<void>;
  /**
   * A conflict was recorded (in the apply transaction, or outside it under policy error).
   * The edge's apply passes a no-op: it reports conflicts from the table once committed
   * (conflict-tail.ts).
   */
  onConflict(c: RecordedConflict): void;
  logger: Logger;
}

interface LocalRow {
  ctid: string;
  row: unknown;
  commit_us: string | null;
  roident: string | number | null;
  mine: boolean;
}

/** A change of a key that a concurrent local transaction inserted keeps meeting new rows: give up, retry. */
const MAX_INSERT_ATTEMPTS = 3;

/**
 * Applies one change row by row: locks the local row, detects a conflict, resolves it with
 * the table's policy (resolveConflict, the same decision on every node), records it in
 * pgfleet.conflicts, and writes (or not). Throws ConflictError under policy `error`, and
 * whatever the server raises for a change the target refuses.
 */
export async function applyChangeCarefully(
  ctx: CarefulApplyContext,
  tx: RemoteTransaction,
  t: ApplyTable,
  msg: InsertMessage | UpdateMessage | DeleteMessage,
): Promise<void> {
  const keySource =
    msg.tag === 'insert' ? msg.newTuple : (oldTuple(msg) ?? (msg.tag === 'update' ? msg.newTuple : null));
  if (!keySource) throw new Error(`${t.schema}.${t.name}: ${msg.tag} without key`);
  const keyValues = t.keyIndexes.map((i) => textOf(keySource[i]));
  for (let attempt = 1; ; attempt++) {
    const { rows } = await ctx.db.query(lookupStatement(t), keyValues);
    const local = rows[0] as LocalRow | undefined;
    const apply = await decide(ctx, tx, t, msg, keyValues, local);
    if (!apply) return;
    if (msg.tag === 'insert') {
      const idx = t.columns.map((_, i) => i);
      if (local) {
        await overwrite(ctx.db, t, local.ctid, msg.newTuple, false);
        return;
      }
      const r = await ctx.db.query(
        insertOneStatement(t, idx),
        idx.map((i) => textOf(msg.newTuple[i])),
      );
      if (r.rowCount === 1 || t.identityFull) return;
      // A local transaction inserted this key meanwhile and has committed: look again.
      if (attempt >= MAX_INSERT_ATTEMPTS)
        throw new Error(
          `${t.schema}.${t.name}: key ${JSON.stringify(keyValues)} keeps being inserted locally`,
        );
      continue;
    }
    if (!local) return;
    if (msg.tag === 'update') await overwrite(ctx.db, t, local.ctid, msg.newTuple, keyChanged(t, msg));
    else await ctx.db.query(deleteByCtidStatement(t), [local.ctid]);
    return;
  }
}

/**
 * Writes `tuple` over the locked row: in place, or, when an identity ALWAYS value changes,
 * by moving the row (no UPDATE may assign those).
 */
async function overwrite(
  db: pg.Client,
  t: ApplyTable,
  ctid: string,
  tuple: ReadonlyArray<string | null | typeof UNCHANGED_TOAST>,
  keyChanged: boolean,
): Promise<void> {
  const sent = tuple.flatMap((v, i) => (v === UNCHANGED_TOAST ? [] : [i]));
  if (sent.some((i) => t.columns[i]?.identityAlways)) {
    const moved = await db.query(moveRowStatement(t, sent), [ctid, ...sent.map((i) => textOf(tuple[i]))]);
    if (moved.rowCount === 1) return;
  }
  const set = assignableIndexes(t, sent, keyChanged);
  await db.query(updateByCtidStatement(t, set), [ctid, ...set.map((i) => textOf(tuple[i]))]);
}

/** Detects and resolves a conflict; true when the change is to be written. */
async function decide(
  ctx: CarefulApplyContext,
  tx: RemoteTransaction,
  t: ApplyTable,
  msg: InsertMessage | UpdateMessage | DeleteMessage,
  keyValues: Array<string | null>,
  local: LocalRow | undefined,
): Promise<boolean> {
  const roident = local?.roident === null || local?.roident === undefined ? null : Number(local.roident);
  const localTs =
    local?.commit_us === null || local?.commit_us === undefined ? null : BigInt(local.commit_us);
  const own = local !== undefined && (local.mine || ctx.seen(localTs, roident ?? 0));
  let kind: ConflictKind | null = null;
  if (msg.tag === 'insert') kind = local ? 'insert_exists' : null;
  else if (msg.tag === 'update') kind = !local ? 'update_missing' : own ? null : 'update_differs';
  else kind = !local ? 'delete_missing' : own ? null : 'delete_differs';
  if (!kind) return true;

  const policy = ctx.policyFor(t.schema, t.name);
  const version: LocalRowVersion | null = local
    ? {
        commitTs: local.commit_us === null ? null : BigInt(local.commit_us),
        originRank: ctx.rankOfOriginId(roident ?? 0),
      }
    : null;
  const decision = resolveConflict(kind, policy, version, {
    commitTs: tx.commitTs,
    sourceRank: ctx.sourceRank,
  });
  const conflictValues = [
    ctx.edge.id,
    ctx.edge.source,
    ctx.edge.target,
    t.schema,
    t.name,
    kind,
    policy,
    decision.resolution,
    decision.reason,
    JSON.stringify(Object.fromEntries(t.keyIndexes.map((i, j) => [t.columns[i]?.name, keyValues[j]]))),
    local ? JSON.stringify(local.row) : null,
    msg.tag === 'delete' ? null : JSON.stringify(changeImage(t, msg)?.new ?? null),
    version?.commitTs != null ? formatPgTimestamp(version.commitTs) : null,
    local ? ctx.originNameOf(roident ?? 0) : null,
    formatPgTimestamp(tx.commitTs),
    formatLsn(tx.finalLsn),
    tx.xid,
  ];
  // Under policy `error` the apply transaction is rolled back, which would take a conflict
  // row written inside it along: record that one outside, once.
  if (decision.resolution === 'error') await ctx.recordErrorConflict(conflictValues);
  else await ctx.db.query(CONFLICT_INSERT_SQL, conflictValues);
  ctx.onConflict({
    table: `${t.schema}.${t.name}`,
    kind,
    resolution: decision.resolution,
    reason: decision.reason,
  });
  if (decision.resolution === 'error') {
    throw new ConflictError(
      `conflict ${kind} on ${t.schema}.${t.name} key ${JSON.stringify(keyValues)} under policy error`,
      { kind, table: `${t.schema}.${t.name}` },
    );
  }
  return decision.resolution === 'apply';
}
