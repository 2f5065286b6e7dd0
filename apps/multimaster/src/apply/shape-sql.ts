import { quoteIdent, quoteLiteral } from '@pgfleet/connection';
import {
  type ConflictSqlContext,
  callForEffect,
  carefulGroupSql,
  carefulRowSql,
  fastGroupSql,
  GROUP_DECLARATIONS,
  type GroupShape,
  type RowRange,
} from './group-sql.js';
import { witnessCalls } from './progress-mark.js';

/** SQLSTATE a group function raises into its own subtransaction when the optimistic apply fell short. */
const SQLSTATE_GROUP_MISMATCH = 'PF004';

/**
 * Parameters every transaction procedure takes before its groups' (see procedureSql).
 * `p_from` is the first transaction of the run that the call applies (1 when first sent; a
 * run sent again after an existing key skips the ones that committed).
 * `p_seen` is a 2-dimensional timestamptz array, one row per distinct "seen" vector,
 * indexed by replication origin id from 0 (this node's own writes); `p_sv[i]` picks the
 * row of transaction i. `p_rank` and `p_oname` are indexed by origin id from 0 too.
 */
export const PROCEDURE_COMMON_PARAMS = [
  'p_expected pg_lsn',
  'p_from int',
  'p_end pg_lsn[]',
  'p_ts timestamptz[]',
  'p_lsn pg_lsn[]',
  'p_xid int8[]',
  'p_sv int[]',
  'p_seen timestamptz[]',
  'p_persist jsonb[]',
  'p_floor timestamptz',
  'p_rank int8[]',
  'p_oname text[]',
] as const;

/** Parameters every group function takes before its group's arrays (see groupFunctionSql). */
export const FUNCTION_COMMON_PARAMS = [
  'p_ts timestamptz',
  'p_lsn pg_lsn',
  'p_xid int8',
  'p_seen timestamptz[]',
  'p_floor timestamptz',
  'p_rank int8[]',
  'p_oname text[]',
] as const;

/**
 * A group of a transaction shape: `single` when every transaction of a run has exactly one
 * row in it (the row of transaction i is then element i, with no ranges to pass).
 */
export interface ShapeGroup {
  shape: GroupShape;
  single: boolean;
  /**
   * A single-row insert applied as a plain INSERT: an existing key raises unique_violation,
   * which fails the call, and the batcher applies the table's inserts with ON CONFLICT from
   * then on (batcher.ts). Unset: ON CONFLICT DO NOTHING and the careful pass.
   */
  plainInsert?: boolean;
}

/** The shape a run of transactions is applied with (see procedureSql). */
export interface TxShape {
  groups: readonly ShapeGroup[];
  /** Some transaction of the run records the edge's "seen" vector (p_persist). */
  persists: boolean;
}

/**
 * A group's parameters: its rows' ranges per transaction (`g<k>_r[1][i]`..`g<k>_r[2][i]`)
 * unless single, and its values (`g<k>_a[row][column]`).
 */
function groupParams(k: number, g: ShapeGroup): string[] {
  return [...(g.single ? [] : [`g${k}_r int[]`]), `g${k}_a text[]`];
}

function procedureParams(shape: TxShape): string[] {
  return [...PROCEDURE_COMMON_PARAMS, ...shape.groups.flatMap((g, k) => groupParams(k + 1, g))];
}

/** Number of parameters of a transaction procedure of this shape. */
export function procedureParamCount(shape: TxShape): number {
  return procedureParams(shape).length;
}

/** Number of parameters of a group function. */
export function functionParamCount(_g: GroupShape): number {
  return FUNCTION_COMMON_PARAMS.length + 1;
}

const rowsOf = (k: number, g: ShapeGroup): RowRange =>
  g.single ? { index: 'i' } : { lo: `g${k}_r[1][i]`, hi: `g${k}_r[2][i]` };

/**
 * What careful SQL reads of transaction i of a run (its vector, commit time and LSN, xid),
 * and an xid, so that the commit record carries the origin's progress even if every row
 * is skipped.
 */
const CAREFUL_TX_SETUP =
  'pgf_v := p_sv[i]; pgf_ts := p_ts[i]; pgf_lsn := p_lsn[i]; pgf_xid := p_xid[i]; ' +
  `${callForEffect('pg_current_xact_id()')} `;

/**
 * The careful pass of a transaction procedure: a function that applies transaction i of
 * the run carefully, every group (carefulGroupSql), in the transaction the procedure has
 * just begun by rolling back the optimistic attempt.
 */
function carefulFunctionSql(
  name: string,
  shape: TxShape,
  ctx: (g: GroupShape) => ConflictSqlContext,
): string {
  const groups = shape.groups
    .map((g, k) => {
      const r = rowsOf(k + 1, g);
      const range = 'index' in r ? `pgf_lo := i; pgf_hi := i;` : `pgf_lo := ${r.lo}; pgf_hi := ${r.hi};`;
      return `${range} ${carefulGroupSql(k + 1, g.shape, ctx(g.shape))}`;
    })
    .join(' ');
  return (
    `CREATE OR REPLACE FUNCTION pg_temp.${quoteIdent(name)}(i int, ${procedureParams(shape).join(', ')}) RETURNS void LANGUAGE plpgsql AS $pgf$ ` +
    `DECLARE ${GROUP_DECLARATIONS}; ` +
    'BEGIN ' +
    CAREFUL_TX_SETUP +
    `${groups} END $pgf$`
  );
}

/**
 * A procedure that applies a run of source transactions of one shape (the same sequence
 * of groups), each as its OWN target transaction: for transaction i it applies every
 * group optimistically (fastGroupSql). A group that fell short is applied carefully (lock
 * first, decide every row against the locked version, record the conflicts):
 * - when every group of the shape has one row per transaction (TPC-B, most OLTP), the
 *   statement that fell short wrote nothing, so only that row is applied carefully, in
 *   place (carefulRowSql), and the transaction goes on with its next group;
 * - otherwise a multi-row statement may have written part of its rows: the transaction is
 *   rolled back and applied again, every group carefully (carefulGroupSql, in the
 *   companion function).
 * Then it records the edge's "seen" vector when it changed, leaves the origin's witness
 * (progress-mark.ts), sets the origin's progress to
 * (p_end[i], p_ts[i]) and COMMITs. Called once for the whole run (CALL, outside a
 * transaction block), so one protocol message carries many transactions and the plans
 * stay cached in the session.
 *
 * The guard runs once, at the start, inside the first transaction: if anything pipelined
 * before the call failed, nothing of the run commits; the loop starts at `p_from`. The
 * origin setup and COMMIT of a transaction are adjacent statements of a message the server
 * already holds whole, so a replicator that dies cannot part them, and the setup never
 * precedes a ROLLBACK (from PostgreSQL 16 an aborted transaction would move the origin
 * too). A backend terminated between the two can still leave the origin ahead; its witness
 * tells. If transaction i fails, the ones before it stay committed and the row names the
 * last of them.
 *
 * Returns the statements that create the procedure (and its careful companion when it has
 * one). Both live in pg_temp: per session, never replicated, dropped with the apply
 * connection.
 */
export function procedureSql(
  name: string,
  shape: TxShape,
  ctx: (g: GroupShape) => ConflictSqlContext,
  edge: { id: string; origin: string },
): string[] {
  const params = procedureParams(shape);
  const inPlace = shape.groups.every((g) => g.single);
  const careful = `${name}_c`;
  const args = params.map((p) => p.split(' ')[0]).join(', ');
  const rollBackAndRedo = `ROLLBACK; PERFORM pg_temp.${quoteIdent(careful)}(i, ${args}); EXIT pgf_fast;`;
  const carefulHere = (k: number, g: GroupShape) => CAREFUL_TX_SETUP + carefulRowSql(k, g, ctx(g), 'i');
  const fast = shape.groups
    .map((g, k) =>
      fastGroupSql(
        k + 1,
        g.shape,
        rowsOf(k + 1, g),
        'p_sv[i]',
        inPlace ? carefulHere(k + 1, g.shape) : rollBackAndRedo,
        g.plainInsert === true,
      ),
    )
    .join(' ');
  const persist = shape.persists
    ? `IF p_persist[i] IS NOT NULL THEN UPDATE pgfleet.edge_seen SET seen = p_persist[i] WHERE edge = ${quoteLiteral(edge.id)}; END IF; `
    : '';
  return [
    ...(inPlace ? [] : [carefulFunctionSql(careful, shape, ctx)]),
    `CREATE OR REPLACE PROCEDURE pg_temp.${quoteIdent(name)}(${params.join(', ')}) LANGUAGE plpgsql AS $pgf$ ` +
      `DECLARE i int; ${inPlace ? GROUP_DECLARATIONS : 'pgf_n int8; pgf_void boolean'}; ` +
      'BEGIN ' +
      `${callForEffect('pgfleet.apply_guard(p_expected)')} ` +
      'FOR i IN p_from..cardinality(p_end) LOOP ' +
      `<<pgf_fast>> BEGIN ${fast} END; ` +
      persist +
      witnessCalls(edge.origin)
        .map((c) => `${callForEffect(c)} `)
        .join('') +
      `${callForEffect('pg_replication_origin_xact_setup(p_end[i], p_ts[i])')} ` +
      'COMMIT; ' +
      'END LOOP; END $pgf$',
  ];
}

/** CALL of a procedureSql procedure with `params` parameters. */
export function callSql(name: string, params: number): string {
  return `CALL pg_temp.${quoteIdent(name)}(${Array.from({ length: params }, (_, i) => `$${i + 1}`).join(', ')})`;
}

/**
 * A function that applies one group inside the caller's transaction (large transactions,
 * which are streamed statement by statement): optimistically in a subtransaction, and if
 * that fell short, after rolling the subtransaction back, carefully. Its `p_seen` holds one
 * vector.
 */
export function groupFunctionSql(name: string, g: GroupShape, ctx: ConflictSqlContext): string {
  const params = [...FUNCTION_COMMON_PARAMS, 'g1_a text[]'];
  return (
    `CREATE OR REPLACE FUNCTION pg_temp.${quoteIdent(name)}(${params.join(', ')}) RETURNS void LANGUAGE plpgsql AS $pgf$ ` +
    `DECLARE pgf_ok boolean := true; ${GROUP_DECLARATIONS}; ` +
    'BEGIN ' +
    'pgf_v := 1; pgf_ts := p_ts; pgf_lsn := p_lsn; pgf_xid := p_xid; pgf_lo := 1; pgf_hi := array_length(g1_a, 1); ' +
    `BEGIN ${fastGroupSql(1, g, { lo: 'pgf_lo', hi: 'pgf_hi' }, '1', `RAISE EXCEPTION 'pgfleet: group fell short' USING ERRCODE = '${SQLSTATE_GROUP_MISMATCH}';`)} ` +
    `EXCEPTION WHEN SQLSTATE '${SQLSTATE_GROUP_MISMATCH}' THEN pgf_ok := false; END; ` +
    `IF NOT pgf_ok THEN ${carefulGroupSql(1, g, ctx)} END IF; ` +
    'END $pgf$'
  );
}

/** `SELECT pg_temp.<name>($1, ...)` for a group function. */
export function groupCallSql(name: string, params: number): string {
  return `SELECT pg_temp.${quoteIdent(name)}(${Array.from({ length: params }, (_, i) => `$${i + 1}`).join(', ')})`;
}

/** Records the edge's "seen" vector inside a streamed transaction. */
export function persistSeenSql(edgeId: string): string {
  return `UPDATE pgfleet.edge_seen SET seen = $1::jsonb WHERE edge = ${quoteLiteral(edgeId)}`;
}
