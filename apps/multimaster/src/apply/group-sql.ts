import { quoteIdent, quoteLiteral, quoteQualified } from '@pgfleet/connection';
import type { ConflictPolicy } from '../config.js';
import type { ConflictKind } from '../conflict.js';
import { SQLSTATE_CONFLICT_ERROR } from '../metadata.js';
import { type DecisionInputs, decisionFor, decisionSql, UNKNOWN_RANK } from './decision-sql.js';
import type { ApplyTable } from './statements.js';

export type ChangeKind = 'insert' | 'update' | 'delete';

/**
 * The rows one set-based statement applies: one table, one kind of change, the same
 * columns. Its parameters are the source's text forms, one row of a 2-dimensional text[]
 * per column (a function takes at most 100 arguments, a table may have more columns):
 * insert → every column in `setIndexes`; update → the old key (keyIndexes), then the new
 * values of `setIndexes` (columns sent as unchanged TOAST and unchanged key columns left
 * out); delete → the key.
 */
export interface GroupShape {
  table: ApplyTable;
  kind: ChangeKind;
  setIndexes: readonly number[];
}

/** What the conflict SQL needs to know about the edge, constant for a session. */
export interface ConflictSqlContext {
  edge: { id: string; source: string; target: string };
  sourceRank: number;
  policy: ConflictPolicy;
}

/** Table columns of a group's parameters, in parameter order (see GroupShape). */
export function groupColumns(g: GroupShape): number[] {
  if (g.kind === 'insert') return [...g.setIndexes];
  if (g.kind === 'update') return [...g.table.keyIndexes, ...g.setIndexes];
  return [...g.table.keyIndexes];
}

function col(t: ApplyTable, i: number): { name: string; type: string; identityAlways?: boolean } {
  const c = t.columns[i];
  if (!c) throw new RangeError(`column index ${i} out of range for ${t.schema}.${t.name}`);
  return c;
}

const only = (t: ApplyTable) => `ONLY ${quoteQualified(t.schema, t.name)}`;

/**
 * Names and value expressions of one group's parameters inside the generated plpgsql:
 * `g<n>_a` holds them as text, a row per change and a column per parameter; a row is
 * addressed by an index expression.
 */
class GroupParams {
  constructor(
    readonly n: number,
    readonly g: GroupShape,
  ) {}

  get t(): ApplyTable {
    return this.g.table;
  }

  /** Parameter j of the row at `idx`, as text: `g<n>_a[idx][j + 1]` (one 2-dimensional text[] per group, a row per change). */
  text(j: number, idx: string): string {
    return `g${this.n}_a[${idx}][${j + 1}]`;
  }

  /** Parameter position of the old key column `keyPos` (0-based among keyIndexes). */
  keyParam(keyPos: number): number {
    if (this.g.kind === 'insert') {
      const ci = this.t.keyIndexes[keyPos] as number;
      const j = this.g.setIndexes.indexOf(ci);
      if (j < 0) throw new RangeError(`${this.t.schema}.${this.t.name}: insert without key column ${ci}`);
      return j;
    }
    return keyPos;
  }

  /** Parameter position of the new value of table column `ci` (insert and update). */
  setParam(ci: number): number {
    const j = this.g.setIndexes.indexOf(ci);
    if (j < 0) throw new RangeError(`column ${ci} not assigned`);
    return this.g.kind === 'update' ? this.t.keyIndexes.length + j : j;
  }

  /** `(g1_a[idx][j + 1])::type`: parameter j of the row at `idx`, cast to its column's type. */
  value(j: number, idx: string): string {
    const ci = groupColumns(this.g)[j] as number;
    return `(${this.text(j, idx)})::${col(this.t, ci).type}`;
  }

  /** `t.k1 = <old key 1> AND ...` for the row at `idx`. */
  keyMatch(alias: string, idx: string): string {
    return this.t.keyIndexes
      .map((ci, p) => `${alias}.${quoteIdent(col(this.t, ci).name)} = ${this.value(this.keyParam(p), idx)}`)
      .join(' AND ');
  }

  /** `jsonb_build_object('k', text, ...)` of the key (old key for update/delete). */
  keyJson(idx: string): string {
    const parts = this.t.keyIndexes.map(
      (ci, p) => `${quoteLiteral(col(this.t, ci).name)}, ${this.text(this.keyParam(p), idx)}`,
    );
    return `jsonb_build_object(${parts.join(', ')})`;
  }

  /**
   * The remote row as the source sent it, text values by column name (columns sent as
   * unchanged TOAST absent), for pgfleet.conflicts; NULL for a delete.
   */
  remoteJson(idx: string): string {
    if (this.g.kind === 'delete') return 'NULL::jsonb';
    const names: Array<[string, string]> = [];
    if (this.g.kind === 'update')
      this.t.keyIndexes.forEach((ci, p) => {
        if (!this.g.setIndexes.includes(ci)) names.push([col(this.t, ci).name, this.text(p, idx)]);
      });
    for (const ci of this.g.setIndexes) names.push([col(this.t, ci).name, this.text(this.setParam(ci), idx)]);
    names.sort(
      (a, b) =>
        this.t.columns.findIndex((c) => c.name === a[0]) - this.t.columns.findIndex((c) => c.name === b[0]),
    );
    return `jsonb_build_object(${names.map(([n, v]) => `${quoteLiteral(n)}, ${v}`).join(', ')})`;
  }

  /** Columns an update writes in place: assigned columns except identity ALWAYS ones (never assignable). */
  assigned(): number[] {
    if (this.g.kind === 'delete') return [];
    const set =
      this.g.kind === 'insert'
        ? this.g.setIndexes.filter((ci) => !this.t.keyIndexes.includes(ci))
        : this.g.setIndexes;
    return set.filter((ci) => !col(this.t, ci).identityAlways);
  }

  /** Identity ALWAYS columns among the new values: a change of one moves the row. */
  identityAlways(): number[] {
    return this.g.setIndexes.filter((ci) => col(this.t, ci).identityAlways);
  }

  /**
   * SET list writing the new values of the row at `idx` over `t`. With nothing assignable,
   * `c = c` still writes a new row version, which then carries the change's commit
   * timestamp and origin, as on every other node.
   */
  setList(idx: string): string {
    const a = this.assigned();
    if (a.length === 0) {
      const c = this.t.columns.find((x) => !x.identityAlways);
      if (!c)
        throw new RangeError(`${this.t.schema}.${this.t.name}: every column is GENERATED ALWAYS AS IDENTITY`);
      return `${quoteIdent(c.name)} = ${quoteIdent(c.name)}`;
    }
    return a
      .map((ci) => `${quoteIdent(col(this.t, ci).name)} = ${this.value(this.setParam(ci), idx)}`)
      .join(', ');
  }
}

/**
 * Whether the local row version `t` was seen by the source before it wrote the incoming
 * change (see README "Conflicts"): its commit timestamp is unknown (frozen, or written by
 * this very transaction and not yet committed), older than the target's join to the mesh
 * (p_floor), or not newer than the newest transaction of its origin node that the source
 * had applied (p_seen[vector][roident]; +infinity for the source's own origins, NULL for
 * origins that are no mesh node). An expression on `t` so that EvalPlanQual re-evaluates
 * it on the version a statement locks after waiting for a concurrent writer. `vector`
 * selects the row of p_seen.
 */
export function seenCondition(alias: string, vector: string): string {
  const ts = `pg_xact_commit_timestamp(${alias}.xmin)`;
  const origin = `pg_xact_commit_timestamp_origin(${alias}.xmin)`;
  return `(coalesce(${ts} <= p_floor, true) OR (${origin}).timestamp <= p_seen[${vector}][(${origin}).roident])`;
}

/** seenCondition over an already read version (commit timestamp `ts`, origin id `id`), vector pgf_v. */
function seenOf(ts: string, id: string): string {
  return `coalesce(${ts} IS NULL OR ${ts} <= p_floor OR ${ts} <= p_seen[pgf_v][${id}], false)`;
}

/**
 * Which rows of a group a statement applies: one row at index `index` (every transaction
 * of the run has exactly one row in this group), or the rows `lo`..`hi`.
 */
export type RowRange = { index: string } | { lo: string; hi: string };

/**
 * Plpgsql of the optimistic apply of one group: every row whose local version the source
 * had seen is written in one statement, and the row count tells whether that was every
 * row. If not (a row is missing, raced, or an insert's key exists), `onMismatch` runs,
 * and nothing of the group may be kept: the caller rolls back (procedure) or raises into
 * a subtransaction (function) and applies the transaction or group carefully.
 * Every plpgsql statement here is evaluated anew in each transaction (plpgsql prepares a
 * simple expression again after a COMMIT), so the code per row range is kept to the
 * statement and one test. A multi-row INSERT runs without ON CONFLICT in a subtransaction
 * that catches unique_violation (ON CONFLICT costs a speculative insertion per row, the
 * subtransaction one per statement); a single row takes ON CONFLICT DO NOTHING, or with
 * `plainInsert` neither (an existing key then fails the statement: see batcher.ts).
 */
export function fastGroupSql(
  n: number,
  g: GroupShape,
  rows: RowRange,
  vector: string,
  onMismatch: string,
  plainInsert = false,
): string {
  const p = new GroupParams(n, g);
  const t = g.table;
  const single = 'index' in rows;
  const idx = single ? rows.index : 'k';
  const from = single ? '' : `generate_series(${rows.lo}, ${rows.hi}) AS k`;
  const check = single
    ? `IF NOT FOUND THEN ${onMismatch} END IF;`
    : `GET DIAGNOSTICS pgf_n = ROW_COUNT; IF pgf_n <> ${rows.hi} - ${rows.lo} + 1 THEN ${onMismatch} END IF;`;
  const pinned = p
    .identityAlways()
    .map((ci) => ` AND t.${quoteIdent(col(t, ci).name)} = ${p.value(p.setParam(ci), idx)}`)
    .join('');
  if (g.kind === 'insert') {
    const cols = g.setIndexes.map((ci) => quoteIdent(col(t, ci).name)).join(', ');
    const target = `${quoteQualified(t.schema, t.name)} AS t (${cols}) OVERRIDING SYSTEM VALUE`;
    const values = g.setIndexes.map((_, j) => p.value(j, idx)).join(', ');
    if (single) {
      if (plainInsert) return `INSERT INTO ${target} VALUES (${values});`;
      const keys = t.keyIndexes.map((ci) => quoteIdent(col(t, ci).name)).join(', ');
      return `INSERT INTO ${target} VALUES (${values}) ON CONFLICT (${keys}) DO NOTHING; ${check}`;
    }
    return (
      `BEGIN INSERT INTO ${target} SELECT ${values} FROM ${from}; GET DIAGNOSTICS pgf_n = ROW_COUNT; ` +
      'EXCEPTION WHEN unique_violation THEN pgf_n := -1; END; ' +
      `IF pgf_n <> ${(rows as { hi: string }).hi} - ${(rows as { lo: string }).lo} + 1 THEN ${onMismatch} END IF;`
    );
  }
  const seen = seenCondition('t', vector);
  if (g.kind === 'update')
    return `UPDATE ${only(t)} AS t SET ${p.setList(idx)}${single ? '' : ` FROM ${from}`} WHERE ${p.keyMatch('t', idx)}${pinned} AND ${seen}; ${check}`;
  return `DELETE FROM ${only(t)} AS t${single ? '' : ` USING ${from}`} WHERE ${p.keyMatch('t', idx)} AND ${seen}; ${check}`;
}

/**
 * Locks the local rows of the keys in `keys` (an int[] expression of row indexes) and reads
 * them as the newest versions: FOR UPDATE in a subquery waits for a concurrent writer and
 * then returns the version it locked (EvalPlanQual re-fetches it); the commit timestamp
 * and origin are computed above the lock, from that version's xmin (a function scan joined
 * at the level of the lock would be reused from before the wait, see the
 * executor README "EvalPlanQual (READ COMMITTED Update Checking)").
 */
function lockRead(p: GroupParams, keys: string): string {
  const t = p.t;
  return (
    "SELECT coalesce(array_agg(v.k ORDER BY v.k), '{}'), array_agg(l.ctid ORDER BY v.k), array_agg(l.img ORDER BY v.k), " +
    'array_agg(c.timestamp ORDER BY v.k), array_agg(c.roident::int ORDER BY v.k) ' +
    'INTO pgf_rk, pgf_rctid, pgf_rimg, pgf_rts, pgf_rid ' +
    `FROM unnest(${keys}) AS v(k) ` +
    `LEFT JOIN LATERAL (SELECT t.ctid, t.xmin, to_jsonb(t) AS img FROM ${only(t)} AS t WHERE ${p.keyMatch('t', 'v.k')} LIMIT 1 FOR UPDATE OF t) AS l ON true ` +
    'LEFT JOIN LATERAL pg_xact_commit_timestamp_origin(l.xmin) AS c ON true;'
  );
}

/** The local version and decision of one row, as SQL expressions, for its pgfleet.conflicts record. */
interface ConflictRow {
  kind: string;
  resolution: string;
  reason: string;
  /** Index of the row among the group's parameters. */
  index: string;
  img: string;
  lts: string;
  lid: string;
}

/** Name of the local version's origin for pgfleet.conflicts: `local:<target>`, a node's origin, or `origin#<id>`. */
function originName(ctx: ConflictSqlContext, lid: string): string {
  return `CASE WHEN ${lid} IS NULL THEN NULL WHEN ${lid} = 0 THEN ${quoteLiteral(`local:${ctx.edge.target}`)} ELSE coalesce(p_oname[${lid}], 'origin#' || ${lid}) END`;
}

/** `jsonb_build_object(...)` of one conflict, the document pgfleet.record_conflicts takes. */
function conflictObject(p: GroupParams, ctx: ConflictSqlContext, r: ConflictRow): string {
  const origin = originName(ctx, r.lid);
  return (
    'jsonb_build_object(' +
    [
      `'edge', ${quoteLiteral(ctx.edge.id)}`,
      `'source_node', ${quoteLiteral(ctx.edge.source)}`,
      `'target_node', ${quoteLiteral(ctx.edge.target)}`,
      `'table_schema', ${quoteLiteral(p.t.schema)}`,
      `'table_name', ${quoteLiteral(p.t.name)}`,
      `'kind', ${r.kind}`,
      `'policy', ${quoteLiteral(ctx.policy)}`,
      `'resolution', ${r.resolution}`,
      `'reason', ${r.reason}`,
      `'key', ${p.keyJson(r.index)}`,
      `'local_row', ${r.img}`,
      `'remote_row', ${p.remoteJson(r.index)}`,
      `'local_commit_ts', ${r.lts}`,
      `'local_origin', ${origin}`,
      "'remote_commit_ts', pgf_ts",
      "'remote_commit_lsn', pgf_lsn",
      "'remote_xid', pgf_xid",
    ].join(', ') +
    ')'
  );
}

/** The decision inputs of a local version (commit time `lts`, origin id `lid`) against this transaction's change. */
function decisionInputs(ctx: ConflictSqlContext, lts: string, lid: string): DecisionInputs {
  return { lts, lrank: `coalesce(p_rank[${lid}], ${UNKNOWN_RANK})`, rts: 'pgf_ts', rrank: ctx.sourceRank };
}

/**
 * Records one conflict as pgfleet.record_conflicts does for a set (same row, PF003 under
 * policy `error`), written out: no document to build and take apart again. `write`, a
 * data-modifying statement, runs in the same statement as the record (one executor start
 * instead of two).
 */
function recordConflictSql(p: GroupParams, ctx: ConflictSqlContext, r: ConflictRow, write?: string): string {
  const lit = quoteLiteral;
  const t = p.t;
  const refuse =
    ctx.policy === 'error'
      ? `RAISE EXCEPTION 'pgfleet: conflict % on %.% under policy error', ${r.kind}, ${lit(t.schema)}, ${lit(t.name)} USING ERRCODE = '${SQLSTATE_CONFLICT_ERROR}'; `
      : '';
  return (
    refuse +
    (write ? `WITH pgf_w AS (${write}) ` : '') +
    'INSERT INTO pgfleet.conflicts (edge, source_node, target_node, table_schema, table_name, kind, policy, resolution, reason, ' +
    'key, local_row, remote_row, local_commit_ts, local_origin, remote_commit_ts, remote_commit_lsn, remote_xid) VALUES (' +
    [
      lit(ctx.edge.id),
      lit(ctx.edge.source),
      lit(ctx.edge.target),
      lit(t.schema),
      lit(t.name),
      r.kind,
      lit(ctx.policy),
      r.resolution,
      r.reason,
      p.keyJson(r.index),
      r.img,
      p.remoteJson(r.index),
      r.lts,
      originName(ctx, r.lid),
      'pgf_ts',
      'pgf_lsn',
      'pgf_xid',
    ].join(', ') +
    ');'
  );
}

/**
 * Decides every locked row (pgf_r* arrays), records the conflicts (pgfleet.record_conflicts
 * raises PF003 for policy `error`) and leaves in pgf_apply the row indexes to write.
 * `kindSql` names the conflict of a row (NULL: none) from u.ctid, u.lts, u.lid.
 */
function decide(
  p: GroupParams,
  ctx: ConflictSqlContext,
  kindSql: string,
  kinds: readonly ConflictKind[],
): string {
  const conflict = conflictObject(p, ctx, {
    kind: 'x.kind',
    resolution: 'x.resolution',
    reason: 'x.reason',
    index: 'x.k',
    img: 'x.img',
    lts: 'x.lts',
    lid: 'x.lid',
  });
  const d = decisionSql('y.kind', ctx.policy, decisionInputs(ctx, 'y.lts', 'y.lid'), kinds);
  return (
    `SELECT coalesce(jsonb_agg(${conflict} ORDER BY x.k) FILTER (WHERE x.kind IS NOT NULL), '[]'), ` +
    "coalesce(array_agg(x.k) FILTER (WHERE x.ctid IS NOT NULL AND (x.kind IS NULL OR x.resolution = 'apply')), '{}') " +
    'INTO pgf_conf, pgf_apply ' +
    `FROM (SELECT y.*, ${d.resolution} AS resolution, ${d.reason} AS reason ` +
    `FROM (SELECT u.*, ${kindSql} AS kind FROM unnest(pgf_rk, pgf_rctid, pgf_rimg, pgf_rts, pgf_rid) AS u(k, ctid, img, lts, lid)) AS y) AS x; ` +
    'PERFORM pgfleet.record_conflicts(pgf_conf);'
  );
}

/**
 * Writes the new values over the locked rows in pgf_apply (by ctid, which the lock keeps
 * stable). A row whose identity ALWAYS value changes cannot be updated (only DEFAULT may
 * be assigned, 428C9): it is deleted and inserted again with OVERRIDING SYSTEM VALUE,
 * keeping the columns the change did not carry.
 */
function overwrite(p: GroupParams): string {
  const t = p.t;
  const rows = 'unnest(pgf_rk, pgf_rctid) AS x(k, ctid)';
  let out = '';
  const always = p.identityAlways();
  if (always.length > 0) {
    const sent = new Set(p.g.setIndexes);
    const kept = [...t.columns.flatMap((c, i) => (sent.has(i) ? [] : [c.name])), ...(t.unsentColumns ?? [])];
    const cols = [...p.g.setIndexes.map((ci) => col(t, ci).name), ...kept].map(quoteIdent).join(', ');
    const vals = [
      ...p.g.setIndexes.map((ci) => p.value(p.setParam(ci), 'old.pgf_mv_k')),
      ...kept.map((c) => `old.${quoteIdent(c)}`),
    ].join(', ');
    const changed = `(${always.map((ci) => `t.${quoteIdent(col(t, ci).name)}`).join(', ')}) IS DISTINCT FROM (${always.map((ci) => p.value(p.setParam(ci), 'x.k')).join(', ')})`;
    out +=
      `WITH old AS (DELETE FROM ${only(t)} AS t USING ${rows} WHERE t.ctid = x.ctid AND x.k = ANY(pgf_apply) AND ${changed} RETURNING t.*, x.k AS pgf_mv_k) ` +
      `INSERT INTO ${quoteQualified(t.schema, t.name)} (${cols}) OVERRIDING SYSTEM VALUE SELECT ${vals} FROM old; `;
  }
  // Rows just moved are deleted by this transaction: their old ctid matches nothing any more.
  out += `UPDATE ${only(t)} AS t SET ${p.setList('x.k')} FROM ${rows} WHERE t.ctid = x.ctid AND x.k = ANY(pgf_apply);`;
  return out;
}

/**
 * Plpgsql of the careful apply of one group, rows `pgf_lo`..`pgf_hi` (vector pgf_v, remote
 * commit pgf_ts / pgf_lsn / pgf_xid), in a transaction
 * where nothing of the group was written yet: lock every local row first, decide each
 * against the version locked, record the conflicts, then write. Set-based throughout.
 */
export function carefulGroupSql(n: number, g: GroupShape, ctx: ConflictSqlContext): string {
  const p = new GroupParams(n, g);
  const t = g.table;
  const all = 'ARRAY(SELECT generate_series(pgf_lo, pgf_hi))';
  const seen = seenOf('u.lts', 'u.lid');
  if (g.kind === 'update') {
    return `${lockRead(p, all)} ${decide(p, ctx, `CASE WHEN u.ctid IS NULL THEN 'update_missing' WHEN ${seen} THEN NULL ELSE 'update_differs' END`, ['update_missing', 'update_differs'])} ${overwrite(p)}`;
  }
  if (g.kind === 'delete') {
    return (
      `${lockRead(p, all)} ${decide(p, ctx, `CASE WHEN u.ctid IS NULL THEN 'delete_missing' WHEN ${seen} THEN NULL ELSE 'delete_differs' END`, ['delete_missing', 'delete_differs'])} ` +
      `DELETE FROM ${only(t)} AS t USING unnest(pgf_rk, pgf_rctid) AS x(k, ctid) WHERE t.ctid = x.ctid AND x.k = ANY(pgf_apply);`
    );
  }
  // insert: a key that exists is insert_exists (whoever wrote it); a missing one is inserted.
  // A local transaction may insert the same key meanwhile (invisible to the lock, it commits
  // while the INSERT waits on its index entry): ON CONFLICT DO NOTHING skips that row, and
  // the next round locks it and resolves insert_exists.
  const keys = t.keyIndexes.map((ci) => quoteIdent(col(t, ci).name));
  const cols = g.setIndexes.map((ci) => quoteIdent(col(t, ci).name)).join(', ');
  const inserted = t.keyIndexes
    .map((ci, q) => `i.${quoteIdent(col(t, ci).name)} = ${p.value(p.keyParam(q), 'm.k')}`)
    .join(' AND ');
  return (
    `pgf_todo := ${all}; ` +
    'FOR pgf_try IN 1..3 LOOP ' +
    `${lockRead(p, 'pgf_todo')} ` +
    `${decide(p, ctx, "CASE WHEN u.ctid IS NULL THEN NULL ELSE 'insert_exists' END", ['insert_exists'])} ` +
    // pgf_apply holds the existing rows whose insert_exists the remote row won.
    `pgf_missing := ARRAY(SELECT x.k FROM unnest(pgf_rk, pgf_rctid) AS x(k, ctid) WHERE x.ctid IS NULL); ` +
    `${overwrite(p)} ` +
    `WITH i AS (INSERT INTO ${quoteQualified(t.schema, t.name)} AS t (${cols}) OVERRIDING SYSTEM VALUE ` +
    `SELECT ${g.setIndexes.map((_, j) => p.value(j, 'k')).join(', ')} FROM unnest(pgf_missing) AS k ON CONFLICT (${keys.join(', ')}) DO NOTHING RETURNING ${keys.map((k) => `t.${k}`).join(', ')}) ` +
    `SELECT coalesce(array_agg(m.k), '{}') INTO pgf_todo FROM unnest(pgf_missing) AS m(k) WHERE NOT EXISTS (SELECT 1 FROM i WHERE ${inserted}); ` +
    'EXIT WHEN cardinality(pgf_todo) = 0; ' +
    'END LOOP; ' +
    'IF cardinality(pgf_todo) > 0 THEN ' +
    `RAISE EXCEPTION 'pgfleet: keys of ${t.schema}.${t.name} keep being inserted locally while applying' USING ERRCODE = '40001'; ` +
    'END IF;'
  );
}

/**
 * Plpgsql of the careful apply of the one row at index `index` of a group (remote commit
 * pgf_ts / pgf_lsn / pgf_xid, vector pgf_v), in place: the optimistic statement for this
 * row matched nothing, so nothing of it was written, and the groups before it in the
 * transaction stay applied. Same decisions as carefulGroupSql, without its arrays: an
 * update or delete locks the row (FOR UPDATE returns the version it locked, after any
 * wait), reads the commit time and origin of that version's xmin as plain expressions
 * (not a function scan joined to the lock, which would be evaluated before a lock wait:
 * see lockRead), decides (decision-sql.ts, written out for the kind and policy: no
 * function call), and writes by ctid; a conflict's record and its write are one
 * statement. Inserts, and updates that move a row (identity ALWAYS), take carefulGroupSql
 * over the one row. (SELECT INTO stops at the first row: the key is unique, no LIMIT needed.)
 */
export function carefulRowSql(n: number, g: GroupShape, ctx: ConflictSqlContext, index: string): string {
  const p = new GroupParams(n, g);
  const t = g.table;
  if (g.kind === 'insert' || p.identityAlways().length > 0)
    return `pgf_lo := ${index}; pgf_hi := ${index}; ${carefulGroupSql(n, g, ctx)}`;
  const [missing, differs]: [ConflictKind, ConflictKind] =
    g.kind === 'update' ? ['update_missing', 'update_differs'] : ['delete_missing', 'delete_differs'];
  const write =
    g.kind === 'update'
      ? `UPDATE ${only(t)} AS t SET ${p.setList(index)} WHERE t.ctid = pgf_c`
      : `DELETE FROM ${only(t)} AS t WHERE t.ctid = pgf_c`;
  const row: ConflictRow = {
    kind: 'pgf_kind',
    resolution: 'pgf_res',
    reason: 'pgf_why',
    index,
    img: 'pgf_img',
    lts: 'pgf_lts',
    lid: 'pgf_lid',
  };
  const decided = (kind: ConflictKind) => {
    const d = decisionFor(kind, ctx.policy, decisionInputs(ctx, 'pgf_lts', 'pgf_lid'));
    return `pgf_kind := '${kind}'; pgf_res := ${d.resolution}; pgf_why := ${d.reason}; `;
  };
  return (
    `SELECT t.ctid, t.xmin, to_jsonb(t) INTO pgf_c, pgf_x, pgf_img FROM ${only(t)} AS t WHERE ${p.keyMatch('t', index)} FOR UPDATE OF t; ` +
    `IF pgf_c IS NULL THEN pgf_lts := NULL; pgf_lid := NULL; ${decided(missing)}${recordConflictSql(p, ctx, row)} ` +
    'ELSE pgf_lts := pg_xact_commit_timestamp(pgf_x); pgf_lid := (pg_xact_commit_timestamp_origin(pgf_x)).roident; ' +
    `IF ${seenOf('pgf_lts', 'pgf_lid')} THEN ${write}; ` +
    `ELSE ${decided(differs)}${recordConflictSql(p, ctx, row, `${write} AND pgf_res = 'apply'`)} END IF; ` +
    'END IF;'
  );
}

/** Declarations every generated block needs (see fastGroupSql and carefulGroupSql). */
export const GROUP_DECLARATIONS = [
  'pgf_lo int',
  'pgf_hi int',
  'pgf_n int8',
  'pgf_v int',
  'pgf_ts timestamptz',
  'pgf_lsn pg_lsn',
  'pgf_xid int8',
  'pgf_rk int[]',
  'pgf_rctid tid[]',
  'pgf_rimg jsonb[]',
  'pgf_rts timestamptz[]',
  'pgf_rid int[]',
  'pgf_conf jsonb',
  'pgf_apply int[]',
  'pgf_missing int[]',
  'pgf_todo int[]',
  'pgf_try int',
  'pgf_c tid',
  'pgf_x xid',
  'pgf_img jsonb',
  'pgf_lts timestamptz',
  'pgf_lid int',
  'pgf_kind text',
  'pgf_res text',
  'pgf_why text',
  'pgf_void boolean',
].join('; ');

/**
 * Calls a function for its effect (`PERFORM f(...)` would): as an assignment of a plain
 * expression, which PL/pgSQL evaluates without the executor. PERFORM runs a whole query
 * (plan, executor start, Result node) each time, 3 to 8 µs per call measured on
 * PostgreSQL 15, once per applied transaction for the origin's progress. A void result is
 * NULL-tested so that it fits the boolean `pgf_void`.
 */
export function callForEffect(call: string): string {
  return `pgf_void := ${call} IS NULL;`;
}
