import { quoteIdent, quoteLiteral } from '@pgfleet/connection';
import {
  type ConflictSqlContext,
  carefulGroupSql,
  fastGroupSql,
  GROUP_DECLARATIONS,
  type GroupShape,
  groupColumns,
} from './group-sql.js';

/** Prefix of the notice a transaction procedure sends after a COMMIT, followed by the end LSN. */
export const COMMITTED_NOTICE = 'pgfleet committed ';
/** Prefix of the notice pgfleet.record_conflicts sends, followed by the conflicts as JSON. */
export const CONFLICTS_NOTICE = 'pgfleet conflicts ';
/**
 * A transaction procedure reports a COMMIT by notice when none was reported for this long
 * (the first COMMIT of a call always): every notice is a flush, too costly per transaction.
 */
export const COMMIT_NOTICE_INTERVAL_MS = 5;
/** SQLSTATE a group function raises into its own subtransaction when the optimistic apply fell short. */
const SQLSTATE_GROUP_MISMATCH = 'PF004';

/**
 * Parameters every transaction procedure takes before its groups' (see procedureSql).
 * `p_seen` is a 2-dimensional timestamptz array, one row per distinct "seen" vector,
 * indexed by replication origin id from 0 (this node's own writes); `p_sv[i]` picks the
 * row of transaction i. `p_rank` and `p_oname` are indexed by origin id from 0 too.
 */
export const PROCEDURE_COMMON_PARAMS = [
  'p_expected pg_lsn',
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

function groupArrayParams(n: number, g: GroupShape): string[] {
  return groupColumns(g).map((_, j) => `g${n}_a${j} text[]`);
}

/** Number of parameters of a transaction procedure with these groups. */
export function procedureParamCount(groups: readonly GroupShape[]): number {
  return PROCEDURE_COMMON_PARAMS.length + groups.reduce((s, g) => s + 2 + groupColumns(g).length, 0);
}

/** Number of parameters of a group function. */
export function functionParamCount(g: GroupShape): number {
  return FUNCTION_COMMON_PARAMS.length + groupColumns(g).length;
}

/**
 * A procedure that applies a run of source transactions of one shape (the same sequence
 * of groups), each as its OWN target transaction: for transaction i it applies every
 * group's rows g<n>_lo[i]..g<n>_hi[i] optimistically (fastGroupSql); if one group fell
 * short it rolls the transaction back and applies all of it carefully (lock first, decide
 * every row against the locked version, record the conflicts; carefulGroupSql). Then it
 * records the edge's "seen" vector when it changed, sets the origin's progress to
 * (p_end[i], p_ts[i]) and COMMITs. Called once for the whole run (CALL, outside a
 * transaction block), so one protocol message carries many transactions and the plans
 * stay cached in the session.
 *
 * The guard runs once, at the start, inside the first transaction: if anything pipelined
 * before the call failed, nothing of the run commits. The origin setup and COMMIT of a
 * transaction are adjacent statements of a message the server already holds whole, so they
 * run together or not at all. If transaction i fails, the ones before it stay committed
 * and origin progress names the last of them. After the first COMMIT, and after any
 * COMMIT that follows the previous notice by COMMIT_NOTICE_INTERVAL_MS, a notice names its
 * end LSN: the client then knows that it and every earlier transaction of the call
 * committed, even while a later one waits on a lock for a long time.
 *
 * Lives in pg_temp: per session, never replicated, dropped with the apply connection.
 */
export function procedureSql(
  name: string,
  groups: readonly GroupShape[],
  ctx: (g: GroupShape) => ConflictSqlContext,
  edgeId: string,
): string {
  const params = [
    ...PROCEDURE_COMMON_PARAMS,
    ...groups.flatMap((g, k) => [`g${k + 1}_lo int[]`, `g${k + 1}_hi int[]`, ...groupArrayParams(k + 1, g)]),
  ];
  const range = (k: number) => `pgf_lo := g${k}_lo[i]; pgf_hi := g${k}_hi[i];`;
  const fast = groups
    .map((g, k) => `${range(k + 1)} ${fastGroupSql(k + 1, g, 'pgf_ok := false; EXIT pgf_fast;')}`)
    .join(' ');
  const careful = groups.map((g, k) => `${range(k + 1)} ${carefulGroupSql(k + 1, g, ctx(g))}`).join(' ');
  return (
    `CREATE OR REPLACE PROCEDURE pg_temp.${quoteIdent(name)}(${params.join(', ')}) LANGUAGE plpgsql AS $pgf$ ` +
    `DECLARE i int; pgf_ok boolean; pgf_noticed timestamptz; ${GROUP_DECLARATIONS}; ` +
    'BEGIN ' +
    'PERFORM pgfleet.apply_guard(p_expected); ' +
    'FOR i IN 1..cardinality(p_end) LOOP ' +
    'pgf_v := p_sv[i]; pgf_ts := p_ts[i]; pgf_lsn := p_lsn[i]; pgf_xid := p_xid[i]; pgf_ok := true; ' +
    `<<pgf_fast>> BEGIN ${fast} END; ` +
    // ROLLBACK ends the transaction: the careful pass starts a new one (with an xid, so that
    // its commit record carries the origin's progress even if every row was skipped).
    `IF NOT pgf_ok THEN ROLLBACK; PERFORM pg_current_xact_id(); ${careful} END IF; ` +
    `IF p_persist[i] IS NOT NULL THEN UPDATE pgfleet.edge_seen SET seen = p_persist[i] WHERE edge = ${quoteLiteral(edgeId)}; END IF; ` +
    'PERFORM pg_replication_origin_xact_setup(p_end[i], p_ts[i]); ' +
    'COMMIT; ' +
    `IF pgf_noticed IS NULL OR clock_timestamp() - pgf_noticed >= interval '${COMMIT_NOTICE_INTERVAL_MS} ms' THEN ` +
    `pgf_noticed := clock_timestamp(); RAISE NOTICE '${COMMITTED_NOTICE}%', p_end[i]; END IF; ` +
    'END LOOP; END $pgf$'
  );
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
  const params = [...FUNCTION_COMMON_PARAMS, ...groupArrayParams(1, g)];
  return (
    `CREATE OR REPLACE FUNCTION pg_temp.${quoteIdent(name)}(${params.join(', ')}) RETURNS void LANGUAGE plpgsql AS $pgf$ ` +
    `DECLARE pgf_ok boolean := true; ${GROUP_DECLARATIONS}; ` +
    'BEGIN ' +
    'pgf_v := 1; pgf_ts := p_ts; pgf_lsn := p_lsn; pgf_xid := p_xid; pgf_lo := 1; pgf_hi := cardinality(g1_a0); ' +
    `BEGIN ${fastGroupSql(1, g, `RAISE EXCEPTION 'pgfleet: group fell short' USING ERRCODE = '${SQLSTATE_GROUP_MISMATCH}';`)} ` +
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
