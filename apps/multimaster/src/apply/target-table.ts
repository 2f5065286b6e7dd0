import { quoteQualified } from '@pgfleet/connection';
import type { RelationMessage } from '../decode/messages.js';
import type { Edge } from '../naming.js';
import { SchemaMismatchError } from './errors.js';
import type { ApplyTable } from './statements.js';

/** A column of the target table, from its catalog. */
export interface TargetColumn {
  /**
   * The SQL type values are cast to (see castTypeSql): the column's type without its
   * modifier, a domain's base type. The column itself applies its length, precision and
   * domain checks on assignment, as PostgreSQL's own apply does through the type's input
   * function: a value that does not fit fails, it is never cut to fit.
   */
  type: string;
  /** GENERATED ALWAYS AS IDENTITY: writable only with OVERRIDING SYSTEM VALUE on INSERT. */
  identityAlways: boolean;
  /** GENERATED ALWAYS AS (...) STORED: never written. */
  generated: boolean;
}

/** What the apply needs to know about a target table. */
export interface TargetTable {
  /** Every column, in attnum order. */
  columns: Map<string, TargetColumn>;
  /**
   * A key that identifies a row: the primary key, else the columns of a unique,
   * non-partial, immediate index on NOT NULL plain columns (first by name). Null when none.
   */
  uniqueKey: string[] | null;
  /** DEFERRABLE primary key, unique and exclusion constraints, by name (refused: see deferrableProblem). */
  deferrableUnique?: string[];
}

/**
 * JSON array of the names of a table's DEFERRABLE primary key, unique and exclusion
 * constraints: a subquery over the table whose oid is `relid`.
 */
export function deferrableUniqueSql(relid: string): string {
  return `coalesce((SELECT json_agg(con.conname ORDER BY con.conname) FROM pg_constraint con
                     WHERE con.conrelid = ${relid} AND con.contype IN ('p', 'u', 'x') AND con.condeferrable), '[]')`;
}

/**
 * Why a table with DEFERRABLE uniqueness cannot be replicated into: the apply writes as a
 * replica (session_replication_role, as PostgreSQL's own apply worker does), and a deferrable
 * constraint is checked by a trigger, which a replica does not fire. A remote insert of a key
 * that exists would then be written a second time instead of failing or being resolved.
 */
export function deferrableProblem(constraints: string[]): string {
  return `DEFERRABLE constraint${constraints.length > 1 ? 's' : ''} ${constraints.map((c) => `"${c}"`).join(', ')}: replicated writes run as a replica, where deferrable uniqueness is not checked, so a remote row with a key that exists here would be written twice; drop and re-create ${constraints.length > 1 ? 'them' : 'it'} without DEFERRABLE`;
}

/**
 * JSON array of the columns of a table's row key (see TargetTable.uniqueKey), or NULL:
 * a subquery over the table whose oid is `relid` (a column reference such as c.oid).
 */
export function uniqueKeySql(relid: string): string {
  return `(SELECT json_agg(a.attname ORDER BY k.ord)
            FROM (SELECT i.indkey FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
                   WHERE i.indrelid = ${relid} AND i.indisunique AND i.indimmediate AND i.indisvalid
                     AND i.indpred IS NULL AND i.indexprs IS NULL
                     AND NOT EXISTS (SELECT 1 FROM pg_attribute na
                                      WHERE na.attrelid = ${relid} AND na.attnum = ANY(i.indkey) AND NOT na.attnotnull)
                   ORDER BY i.indisprimary DESC, ic.relname LIMIT 1) ix,
                 unnest(ix.indkey) WITH ORDINALITY AS k(attnum, ord)
                 JOIN pg_attribute a ON a.attrelid = ${relid} AND a.attnum = k.attnum)`;
}

/**
 * The type a column's values are cast to from their text form: format_type with typmod
 * -1 of the column's type, or of a domain's base type (domains over domains resolved).
 * Not the column's declared type: an explicit cast to varchar(3), bit(3) or a domain over
 * varchar(3) silently cuts a longer value to fit, where assigning it to the column fails
 * ("value too long", SQLSTATE 22001). A node whose column is narrower than the source's
 * (a column widened on one node first, DDL not being replicated) would otherwise keep a
 * truncated value and never converge (and `check` would match a dead letter's long key to
 * a short one). typmod -1 and not NULL: format_type(bpchar, NULL) is "character", which as
 * a cast means character(1). `attribute` is the pg_attribute row's alias.
 */
const castTypeSql = (attribute: string) => `(WITH RECURSIVE ty(oid, typtype, typbasetype) AS (
            SELECT t.oid, t.typtype, t.typbasetype FROM pg_type t WHERE t.oid = ${attribute}.atttypid
            UNION ALL
            SELECT t.oid, t.typtype, t.typbasetype FROM pg_type t JOIN ty ON t.oid = ty.typbasetype WHERE ty.typtype = 'd')
          SELECT format_type(ty.oid, -1) FROM ty WHERE ty.typtype <> 'd')`;

/**
 * The target table's columns and row key. Run on a session with the apply session's
 * search_path (format_type qualifies what that session could not resolve).
 */
export const TARGET_TABLE_SQL = `
  SELECT (SELECT json_agg(json_build_object('name', a.attname, 'type', ${castTypeSql('a')},
                                            'identityAlways', a.attidentity = 'a', 'generated', a.attgenerated <> '')
                          ORDER BY a.attnum)
            FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS columns,
         ${uniqueKeySql('c.oid')} AS unique_key,
         ${deferrableUniqueSql('c.oid')} AS deferrable_unique
    FROM pg_class c WHERE c.oid = to_regclass($1)`;

export async function loadTargetTable(
  db: { query(text: string, values: unknown[]): Promise<{ rows: Array<Record<string, unknown>> }> },
  schema: string,
  table: string,
): Promise<TargetTable | null> {
  const { rows } = await db.query(TARGET_TABLE_SQL, [quoteQualified(schema, table)]);
  const r = rows[0];
  if (!r?.columns) return null;
  const columns = new Map<string, TargetColumn>();
  for (const c of r.columns as Array<{ name: string } & TargetColumn>) {
    columns.set(c.name, { type: c.type, identityAlways: c.identityAlways, generated: c.generated });
  }
  return {
    columns,
    uniqueKey: (r.unique_key as string[] | null) ?? null,
    deferrableUnique: (r.deferrable_unique as string[] | null) ?? [],
  };
}

/**
 * The row key of a relation as the source sends it. Default and index replica identity:
 * the columns the source marks as key. REPLICA IDENTITY FULL: the source marks every
 * column, but matching on every column cannot tell a concurrently updated row from a
 * missing one (both nodes' updates then meet "no such row" and each keeps its own), so
 * the target's unique key is used whenever all its columns are published. Only a table
 * without such a key is matched on every column (`identityFull`), which `init` refuses.
 */
export function rowKey(
  columns: ReadonlyArray<{ name: string; isKey: boolean }>,
  replicaIdentity: RelationMessage['replicaIdentity'],
  uniqueKey: string[] | null,
): { keyIndexes: number[]; identityFull: boolean } {
  if (replicaIdentity === 'f' && uniqueKey) {
    const idx = uniqueKey.map((k) => columns.findIndex((c) => c.name === k));
    if (idx.every((i) => i >= 0)) return { keyIndexes: idx, identityFull: false };
  }
  return {
    keyIndexes: columns.flatMap((c, i) => (c.isKey ? [i] : [])),
    identityFull: replicaIdentity === 'f',
  };
}

/**
 * Matches a relation message against the target table: every published column must exist
 * there (DDL is not replicated), and the relation needs a key.
 */
export function applyTableFor(edge: Edge, msg: RelationMessage, target: TargetTable | null): ApplyTable {
  const tableId = `${msg.schema}.${msg.name}`;
  if (!target) {
    throw new SchemaMismatchError(`edge ${edge.id}: table ${tableId} does not exist on ${edge.target}`, {
      edge: edge.id,
      table: tableId,
    });
  }
  const columns = msg.columns.map((c) => {
    const tc = target.columns.get(c.name);
    if (tc === undefined) {
      throw new SchemaMismatchError(
        `edge ${edge.id}: column "${c.name}" of ${tableId} exists on ${edge.source} but not on ${edge.target}; add it on every node (DDL is not replicated), the edge resumes by itself`,
        { edge: edge.id, table: tableId, column: c.name },
      );
    }
    return { name: c.name, type: tc.type, isKey: c.isKey, identityAlways: tc.identityAlways };
  });
  if (target.deferrableUnique?.length) {
    throw new SchemaMismatchError(
      `edge ${edge.id}: ${tableId} on ${edge.target}: ${deferrableProblem(target.deferrableUnique)}; the edge resumes by itself`,
      { edge: edge.id, table: tableId, constraints: target.deferrableUnique },
    );
  }
  const key = rowKey(msg.columns, msg.replicaIdentity, target.uniqueKey);
  if (key.keyIndexes.length === 0) {
    throw new SchemaMismatchError(`edge ${edge.id}: ${tableId} has no replica identity on ${edge.source}`, {
      edge: edge.id,
      table: tableId,
    });
  }
  const sent = new Set(msg.columns.map((c) => c.name));
  return {
    schema: msg.schema,
    name: msg.name,
    columns: columns.map((c, i) => ({ ...c, isKey: key.keyIndexes.includes(i) })),
    keyIndexes: key.keyIndexes,
    identityFull: key.identityFull,
    unsentColumns: [...target.columns].flatMap(([n, c]) => (sent.has(n) || c.generated ? [] : [n])),
  };
}
