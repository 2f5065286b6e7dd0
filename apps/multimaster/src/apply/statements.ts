import { quoteIdent, quoteLiteral, quoteQualified } from '@pgfleet/connection';
import { sqlMicros } from '../pg-time.js';
import { witnessStatement } from './progress-mark.js';

/** A replicated table as the apply sees it: source relation columns matched to target types. */
export interface ApplyTable {
  schema: string;
  name: string;
  /**
   * Columns the source sends, in relation order, with the SQL type their text is cast to
   * (TargetColumn.type: no modifier, so the column itself checks the length).
   * `identityAlways`: GENERATED ALWAYS AS IDENTITY on the target, never assigned by an
   * UPDATE (PostgreSQL allows only DEFAULT there, 428C9).
   */
  columns: { name: string; type: string; isKey: boolean; identityAlways?: boolean }[];
  /** Indexes into `columns` of the row key (replica identity, or the unique key under FULL). */
  keyIndexes: number[];
  /** REPLICA IDENTITY FULL without a usable unique key: rows are matched on every column's text form. */
  identityFull: boolean;
  /** Target columns the source does not send and that are not generated: kept when a row moves. */
  unsentColumns?: string[];
}

function qualified(t: ApplyTable): string {
  return `ONLY ${quoteQualified(t.schema, t.name)}`;
}

function col(t: ApplyTable, i: number): { name: string; type: string; identityAlways?: boolean } {
  const c = t.columns[i];
  if (!c) throw new RangeError(`column index ${i} out of range for ${t.schema}.${t.name}`);
  return c;
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
 * Ends an apply transaction: leaves the origin's witness, records the source end LSN and
 * the commit timestamp in the replication origin, then commits, as ONE simple-query message
 * (no parameters, so the values are inlined; all are produced by us, never by users).
 *
 * They must not travel apart. From PostgreSQL 16 an *aborted* transaction also moves the
 * session's origin to the LSN given to pg_replication_origin_xact_setup (the abort record
 * carries the origin; see RecordTransactionAbort in xact.c). If the replicator died after
 * the server had run the setup but before it received COMMIT, the backend aborted the
 * transaction and the origin still claimed it: that transaction was lost on restart. A
 * message is executed only once it has arrived whole, so now either all run or none. A
 * backend ended inside the message can still leave the origin ahead: its witness says
 * where the apply really stands (progress-mark.ts).
 */
export function commitStatement(origin: string, endLsn: string, commitTs: string | ServerClock): string {
  const ts = typeof commitTs === 'string' ? `${quoteLiteral(commitTs)}::timestamptz` : commitTs.sql;
  return `${witnessStatement(origin)}; SELECT pg_replication_origin_xact_setup(${quoteLiteral(endLsn)}::pg_lsn, ${ts}); COMMIT`;
}

/**
 * A commit stamped with the target server's clock rather than a source commit time: for
 * transactions pgfleet writes itself (add-node's start positions, a re-sync's end).
 */
export interface ServerClock {
  sql: 'now()' | 'clock_timestamp()';
}

/** Command tag of the last statement of a (possibly multi-statement) result. */
export function lastCommand(result: unknown): string | null {
  const last = Array.isArray(result) ? result[result.length - 1] : result;
  const command = (last as { command?: unknown } | null | undefined)?.command;
  return typeof command === 'string' ? command : null;
}
