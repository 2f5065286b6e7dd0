import { quoteIdent, quoteLiteral, quoteQualified } from '@pgfleet/connection';
import { sqlMicros } from '../pg-time.js';

/** A replicated table as the apply sees it: source relation columns matched to target types. */
export interface ApplyTable {
  schema: string;
  name: string;
  /**
   * Columns the source sends, in relation order, with the target's SQL type (format_type
   * output). `identityAlways`: GENERATED ALWAYS AS IDENTITY on the target, never assigned
   * by an UPDATE (PostgreSQL allows only DEFAULT there, 428C9).
   */
  columns: { name: string; type: string; isKey: boolean; identityAlways?: boolean }[];
  /** Indexes into `columns` of the row key (replica identity, or the unique key under FULL). */
  keyIndexes: number[];
  /** REPLICA IDENTITY FULL without a usable unique key: rows are matched on every column's text form. */
  identityFull: boolean;
  /** Target columns the source does not send and that are not generated: kept when a row moves. */
  unsentColumns?: string[];
}

export interface BuiltStatement {
  /** Stable for a given shape, so it can be a named prepared statement. */
  name: string;
  text: string;
}

function qualified(t: ApplyTable): string {
  return `ONLY ${quoteQualified(t.schema, t.name)}`;
}

function col(t: ApplyTable, i: number): { name: string; type: string; identityAlways?: boolean } {
  const c = t.columns[i];
  if (!c) throw new RangeError(`column index ${i} out of range for ${t.schema}.${t.name}`);
  return c;
}

/** `$n::text[]` unnested into v(c0, c1, ...), each cast from its text form to the column type. */
function unnestSource(t: ApplyTable, indexes: number[], firstParam: number, alias: string): string {
  const arrays = indexes.map((_, j) => `$${firstParam + j}::text[]`).join(', ');
  const names = indexes.map((_, j) => `${alias}${j}`).join(', ');
  const casts = indexes.map((ci, j) => `${alias}${j}::${col(t, ci).type} AS ${alias}${j}`).join(', ');
  return `SELECT ${casts} FROM unnest(${arrays}) AS u(${names})`;
}

/**
 * Condition that a local row `t` may be overwritten without conflict handling: its last
 * change came from the same source origin (`$originParam`), or from this very transaction.
 * `pg_xact_commit_timestamp_origin` needs track_commit_timestamp (checked at init).
 * It must stay an expression on `t` in the UPDATE/DELETE's WHERE: when the statement waits
 * for a concurrent local writer, EvalPlanQual re-evaluates it on the row version it then
 * locks (a joined function scan would not be re-evaluated, see lookupStatement).
 */
export function ownRowCondition(originParam: number): string {
  return `((pg_xact_commit_timestamp_origin(t.xmin)).roident = $${originParam}::oid OR t.xmin = pg_current_xact_id()::xid)`;
}

/**
 * INSERT of n rows (every column present), one text[] parameter per column. A key that
 * already exists raises unique_violation, which sends the transaction to the careful path.
 */
export function insertStatement(t: ApplyTable, indexes: number[]): BuiltStatement {
  const cols = indexes.map((i) => quoteIdent(col(t, i).name)).join(', ');
  return {
    name: '',
    // INSERT takes no ONLY (it never touches inheritance children anyway). OVERRIDING SYSTEM
    // VALUE: the source's value of a GENERATED ALWAYS identity column must be kept (428C9 otherwise).
    text: `INSERT INTO ${quoteQualified(t.schema, t.name)} AS t (${cols}) OVERRIDING SYSTEM VALUE ${unnestSource(t, indexes, 1, 'c')}`,
  };
}

/**
 * UPDATE of n rows matched on their old key, setting the columns in `setIndexes` (columns
 * sent as unchanged TOAST are left out by the caller). Params: old key arrays, then new
 * value arrays, then the source origin id, then the expected row count. Raises PF001
 * through pgfleet.expect_rows when a row is missing or was last changed by someone else.
 */
export function updateStatement(t: ApplyTable, setIndexes: number[]): BuiltStatement {
  const k = t.keyIndexes.length;
  // An identity ALWAYS column cannot be assigned: require its value to be unchanged instead,
  // so a changed one (UPDATE ... SET id = DEFAULT on the source) fails the row count and
  // goes to the careful path, which moves the row (moveRowStatement).
  const assigned = setIndexes.flatMap((ci, j) => (col(t, ci).identityAlways ? [] : [[ci, j] as const]));
  const pinned = setIndexes.flatMap((ci, j) => (col(t, ci).identityAlways ? [[ci, j] as const] : []));
  const keySrc = t.keyIndexes.map((_, j) => `$${1 + j}::text[]`);
  const valSrc = setIndexes.map((_, j) => `$${1 + k + j}::text[]`);
  const names = [...t.keyIndexes.map((_, j) => `k${j}`), ...setIndexes.map((_, j) => `c${j}`)];
  const casts = [
    ...t.keyIndexes.map((ci, j) => `k${j}::${col(t, ci).type} AS k${j}`),
    ...setIndexes.map((ci, j) => `c${j}::${col(t, ci).type} AS c${j}`),
  ];
  const originParam = 1 + k + setIndexes.length;
  const set =
    assigned.length > 0
      ? assigned.map(([ci, j]) => `${quoteIdent(col(t, ci).name)} = v.c${j}`).join(', ')
      : touchAssignment(t);
  const where = [
    ...t.keyIndexes.map((ci, j) => `t.${quoteIdent(col(t, ci).name)} = v.k${j}`),
    ...pinned.map(([ci, j]) => `t.${quoteIdent(col(t, ci).name)} = v.c${j}`),
  ].join(' AND ');
  return {
    name: '',
    text:
      `WITH v AS (SELECT ${casts.join(', ')} FROM unnest(${[...keySrc, ...valSrc].join(', ')}) AS u(${names.join(', ')})), ` +
      `w AS (UPDATE ${qualified(t)} AS t SET ${set} FROM v WHERE ${where} AND ${ownRowCondition(originParam)} RETURNING 1) ` +
      `SELECT pgfleet.expect_rows(count(*), $${originParam + 1}::int8) FROM w`,
  };
}

/** DELETE of n rows by key; same contract as updateStatement. Params: key arrays, origin, count. */
export function deleteStatement(t: ApplyTable): BuiltStatement {
  const k = t.keyIndexes.length;
  const where = t.keyIndexes.map((ci, j) => `t.${quoteIdent(col(t, ci).name)} = v.c${j}`).join(' AND ');
  return {
    name: '',
    text:
      `WITH v AS (${unnestSource(t, t.keyIndexes, 1, 'c')}), ` +
      `w AS (DELETE FROM ${qualified(t)} AS t USING v WHERE ${where} AND ${ownRowCondition(1 + k)} RETURNING 1) ` +
      `SELECT pgfleet.expect_rows(count(*), $${k + 2}::int8) FROM w`,
  };
}

export function truncateStatement(
  tables: ApplyTable[],
  opts: { cascade: boolean; restartIdentity: boolean },
): string {
  const list = tables.map((t) => qualified(t).replace(/^ONLY /, '')).join(', ');
  return `TRUNCATE ONLY ${list}${opts.restartIdentity ? ' RESTART IDENTITY' : ''}${opts.cascade ? ' CASCADE' : ''}`;
}

/** Key match on `t` for the careful path: one text parameter per identity column starting at $first. */
export function keyMatch(t: ApplyTable, first: number): string {
  if (t.identityFull) {
    // Compare text forms: some types (json, point) have no equality operator, and NULLs must match.
    return t.keyIndexes
      .map((ci, j) => `t.${quoteIdent(col(t, ci).name)}::text IS NOT DISTINCT FROM $${first + j}::text`)
      .join(' AND ');
  }
  return t.keyIndexes
    .map((ci, j) => `t.${quoteIdent(col(t, ci).name)} = $${first + j}::text::${col(t, ci).type}`)
    .join(' AND ');
}

/**
 * Careful path lookup: locks the local row and returns what conflict detection needs:
 * its ctid, its image as JSON, the commit timestamp (µs) and origin of its last change,
 * and whether this transaction wrote it.
 *
 * The row is locked in a subquery and its commit timestamp read outside it. Under READ
 * COMMITTED, FOR UPDATE that waits for a concurrent writer re-fetches the newest version
 * of the locked table's row (EvalPlanQual), but rows of the other relations of the same
 * query level, such as a LATERAL pg_xact_commit_timestamp_origin(t.xmin), are reused from
 * before the wait (src/backend/executor/README, "EvalPlanQual (READ COMMITTED Update
 * Checking)": non-locked relations return the row they returned before). The conflict would then be
 * judged against a version that no longer exists: a later local update lost to an earlier
 * remote one and the nodes diverged. Computed above the lock, the timestamp belongs to the
 * xmin of the version actually locked.
 */
export function lookupStatement(t: ApplyTable): string {
  return (
    `SELECT l.ctid::text AS ctid, l.row, ${sqlMicros('c.timestamp')}::text AS commit_us, c.roident::int8 AS roident, l.mine ` +
    `FROM (SELECT t.ctid, to_jsonb(t) AS row, t.xmin AS x, (t.xmin = pg_current_xact_id()::xid) AS mine ` +
    `FROM ${qualified(t)} AS t WHERE ${keyMatch(t, 1)} LIMIT 1 FOR UPDATE OF t) AS l ` +
    `CROSS JOIN LATERAL pg_xact_commit_timestamp_origin(l.x) AS c`
  );
}

/**
 * Careful path INSERT of one row. With a key, a row of the same key that a concurrent
 * local transaction inserted (invisible to the lookup, committed while this waited on its
 * index entry) makes it insert nothing instead of failing: the caller then looks the row
 * up again and resolves insert_exists. Other unique violations still raise.
 */
export function insertOneStatement(t: ApplyTable, indexes: number[]): string {
  const cols = indexes.map((i) => quoteIdent(col(t, i).name)).join(', ');
  const vals = indexes.map((i, j) => `$${j + 1}::text::${col(t, i).type}`).join(', ');
  const onConflict = t.identityFull
    ? ''
    : ` ON CONFLICT (${t.keyIndexes.map((i) => quoteIdent(col(t, i).name)).join(', ')}) DO NOTHING`;
  return `INSERT INTO ${quoteQualified(t.schema, t.name)} (${cols}) OVERRIDING SYSTEM VALUE VALUES (${vals})${onConflict}`;
}

/**
 * `c = t.c` for the first column an UPDATE may assign: an update whose values are all
 * unchanged keys still writes a new row version, so the row carries the change's commit
 * timestamp and origin like on every other node.
 */
function touchAssignment(t: ApplyTable): string {
  const c = t.columns.find((x) => !x.identityAlways);
  if (!c) throw new RangeError(`${t.schema}.${t.name}: every column is GENERATED ALWAYS AS IDENTITY`);
  return `${quoteIdent(c.name)} = ${quoteIdent(c.name)}`;
}

/**
 * Columns an UPDATE of the careful path assigns: every sent column, except key columns
 * whose value did not change and identity ALWAYS columns (moveRowStatement handles a change
 * of those). Empty means "touch the row" (updateByCtidStatement).
 */
export function assignableIndexes(t: ApplyTable, sent: number[], keyChanged: boolean): number[] {
  return sent.filter((i) => !col(t, i).identityAlways && !(t.columns[i]?.isKey && !keyChanged));
}

/** UPDATE of the row the lookup locked; params: ctid, then one text value per set index. */
export function updateByCtidStatement(t: ApplyTable, setIndexes: number[]): string {
  const set =
    setIndexes.length > 0
      ? setIndexes
          .map((i, j) => `${quoteIdent(col(t, i).name)} = $${j + 2}::text::${col(t, i).type}`)
          .join(', ')
      : touchAssignment(t);
  return `UPDATE ${qualified(t)} SET ${set} WHERE ctid = $1::tid`;
}

/**
 * Replaces the locked row by one with new identity ALWAYS values, which no UPDATE can set:
 * deletes it and inserts it again with OVERRIDING SYSTEM VALUE, in one statement, only if
 * one of those values differs (else it does nothing and the caller updates in place).
 * Columns the change did not send (unchanged TOAST, left out by a column list) keep their
 * values. Params: ctid, then one text value per index of `sent`.
 */
export function moveRowStatement(t: ApplyTable, sent: number[]): string {
  const q = quoteQualified(t.schema, t.name);
  const param = (i: number) => `$${sent.indexOf(i) + 2}::text::${col(t, i).type}`;
  const always = sent.filter((i) => col(t, i).identityAlways);
  const changed = `(${always.map((i) => `t.${quoteIdent(col(t, i).name)}`).join(', ')}) IS DISTINCT FROM (${always.map(param).join(', ')})`;
  const kept = [
    ...t.columns.flatMap((c, i) => (sent.includes(i) ? [] : [c.name])),
    ...(t.unsentColumns ?? []),
  ];
  const cols = [...sent.map((i) => col(t, i).name), ...kept].map(quoteIdent).join(', ');
  const vals = [...sent.map(param), ...kept.map((c) => `old.${quoteIdent(c)}`)].join(', ');
  return (
    `WITH old AS (DELETE FROM ${qualified(t)} AS t WHERE t.ctid = $1::tid AND ${changed} RETURNING t.*) ` +
    `INSERT INTO ${q} (${cols}) OVERRIDING SYSTEM VALUE SELECT ${vals} FROM old`
  );
}

export function deleteByCtidStatement(t: ApplyTable): string {
  return `DELETE FROM ${qualified(t)} WHERE ctid = $1::tid`;
}

/**
 * Ends an apply transaction: records the source end LSN and commit timestamp in the
 * replication origin, then commits, as ONE simple-query message (no parameters, so the
 * values are inlined; both are produced by us, never by users).
 *
 * They must not travel apart. From PostgreSQL 16 an *aborted* transaction also moves the
 * session's origin to the LSN given to pg_replication_origin_xact_setup (the abort record
 * carries the origin; see RecordTransactionAbort in xact.c). If the replicator died after
 * the server had run the setup but before it received COMMIT, the backend aborted the
 * transaction and the origin still claimed it: that transaction was lost on restart. A
 * message is executed only once it has arrived whole, so now either both run or neither.
 */
export function commitStatement(endLsn: string, commitTs: string): string {
  return `SELECT pg_replication_origin_xact_setup(${quoteLiteral(endLsn)}::pg_lsn, ${quoteLiteral(commitTs)}::timestamptz); COMMIT`;
}

/** Command tag of the last statement of a (possibly multi-statement) result. */
export function lastCommand(result: unknown): string | null {
  const last = Array.isArray(result) ? result[result.length - 1] : result;
  const command = (last as { command?: unknown } | null | undefined)?.command;
  return typeof command === 'string' ? command : null;
}

/** Prefix of the notice an insertBatchProcedure sends after a COMMIT, followed by the end LSN. */
export const BATCH_COMMITTED_NOTICE = 'pgfleet committed ';
/**
 * An insertBatchProcedure reports a COMMIT by notice when none was reported for this long
 * (the first COMMIT of a call always): every notice is a flush, too costly per transaction.
 */
export const BATCH_NOTICE_INTERVAL_MS = 5;

/**
 * A procedure that applies a run of insert-only source transactions of one table shape,
 * each as its OWN target transaction: for transaction i it inserts rows lo[i]..hi[i] of
 * the column arrays, records (ends[i], tss[i]) with pg_replication_origin_xact_setup and
 * COMMITs. Called (CALL, outside any transaction block) once for the whole run, so one
 * protocol message carries many transactions and the plans stay cached in the session.
 *
 * The guard runs once, at the start, inside the first transaction: if anything pipelined
 * before the call failed, nothing of the run commits. Origin setup and COMMIT of a
 * transaction are adjacent statements of one message already received by the server, so
 * they run together or not at all, as with commitStatement. If transaction i fails,
 * transactions before it stay committed and origin progress names the last of them.
 * After the first COMMIT, and after any COMMIT that follows the previous notice by
 * BATCH_NOTICE_INTERVAL_MS, a notice names its end LSN: the client then knows that it and
 * every earlier transaction of the call committed, even while a later one waits on a lock
 * for a long time (at most that interval of apply work stays unconfirmed meanwhile).
 *
 * Lives in pg_temp: per session, never replicated, dropped with the apply connection.
 */
export function insertBatchProcedure(t: ApplyTable, indexes: number[], name: string): string {
  const cols = indexes.map((i) => quoteIdent(col(t, i).name)).join(', ');
  const params = indexes.map((_, j) => `pgf_c${j} text[]`).join(', ');
  const one = indexes.map((ci, j) => `pgf_c${j}[pgf_lo[pgf_i]]::${col(t, ci).type}`).join(', ');
  const slices = indexes.map((_, j) => `pgf_c${j}[pgf_lo[pgf_i]:pgf_hi[pgf_i]]`).join(', ');
  const names = indexes.map((_, j) => `c${j}`).join(', ');
  const casts = indexes.map((ci, j) => `u.c${j}::${col(t, ci).type}`).join(', ');
  const target = `${quoteQualified(t.schema, t.name)} AS t (${cols}) OVERRIDING SYSTEM VALUE`;
  return (
    `CREATE OR REPLACE PROCEDURE pg_temp.${quoteIdent(name)}(pgf_expected pg_lsn, pgf_ends pg_lsn[], pgf_tss timestamptz[], pgf_lo int[], pgf_hi int[], ${params}) ` +
    'LANGUAGE plpgsql AS $pgf$ DECLARE pgf_i int; pgf_noticed timestamptz; BEGIN ' +
    'PERFORM pgfleet.apply_guard(pgf_expected); ' +
    'FOR pgf_i IN 1..array_length(pgf_ends, 1) LOOP ' +
    `IF pgf_lo[pgf_i] = pgf_hi[pgf_i] THEN INSERT INTO ${target} VALUES (${one}); ` +
    `ELSE INSERT INTO ${target} SELECT ${casts} FROM unnest(${slices}) AS u(${names}); END IF; ` +
    'PERFORM pg_replication_origin_xact_setup(pgf_ends[pgf_i], pgf_tss[pgf_i]); ' +
    'COMMIT; ' +
    `IF pgf_noticed IS NULL OR clock_timestamp() - pgf_noticed >= interval '${BATCH_NOTICE_INTERVAL_MS} ms' THEN pgf_noticed := clock_timestamp(); RAISE NOTICE '${BATCH_COMMITTED_NOTICE}%', pgf_ends[pgf_i]; END IF; ` +
    'END LOOP; END $pgf$'
  );
}

/** CALL of an insertBatchProcedure with `columns` column arrays. */
export function callBatchStatement(name: string, columns: number): string {
  const args = Array.from({ length: 5 + columns }, (_, i) => `$${i + 1}`);
  return `CALL pg_temp.${quoteIdent(name)}(${args.join(', ')})`;
}
