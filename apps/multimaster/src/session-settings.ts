import { quoteIdent, quoteLiteral } from '@pgfleet/connection';

/**
 * Server settings pinned on every session whose text forms of values matter, so a value
 * reads back as exactly what was written whatever each database's defaults are
 * (ALTER DATABASE / ALTER ROLE ... SET, postgresql.conf).
 *
 * Values travel as text: the source's walsender renders them with its output functions
 * under the replication session's settings, the target's apply session parses them with
 * its input functions under its own. PostgreSQL's apply worker pins the walsender side
 * (libpqwalreceiver.c connects with `-c datestyle=ISO -c intervalstyle=postgres
 * -c extra_float_digits=3` and clears search_path); we pin both sides, and `check` and
 * add-node's copy too, since their checksums and copies are text as well.
 */
export const VALUE_TEXT_SETTINGS: Readonly<Record<string, string>> = {
  // Timestamps and dates as 2024-06-01 09:30:00.123456+00: no DMY/MDY ambiguity, no
  // time zone abbreviations (NDT, +1245 ...) to misread. BC and infinity stay as they are.
  DateStyle: 'ISO, YMD',
  // sql_standard output and input read a leading minus differently.
  IntervalStyle: 'postgres',
  TimeZone: 'UTC',
  // Shortest exact float4/float8 text (PostgreSQL 12+), also inside geometric types;
  // below 1, digits are dropped.
  extra_float_digits: '3',
  bytea_output: 'hex',
  // money's text depends on lc_monetary (symbol, separators, and how many fraction digits
  // the stored integer has): with C on both sides the stored integer is copied as is.
  lc_monetary: 'C',
  // reg* types (regclass, regtype, ...) print names relative to search_path; with only
  // pg_catalog they are schema-qualified on the source and resolve the same on the target.
  // It also makes format_type() qualify the target column types the apply casts to.
  search_path: 'pg_catalog',
};

/**
 * The apply session's settings: value input as above, plus what decides whether a change
 * applies at all. `array_nulls = off` would read {NULL} as the string "NULL", `xmloption =
 * document` would refuse XML content fragments. Conflict detection relies on READ
 * COMMITTED (a lock wait re-reads the newest row version), and a database's
 * statement_timeout / lock_timeout / idle_in_transaction_session_timeout must not turn a
 * slow apply into an error that is then dead-lettered. Nothing the apply runs reports by
 * notice (conflicts are read from pgfleet.conflicts, conflict-tail.ts), and PostgreSQL
 * writes each notice to the socket at once: warnings and errors only.
 */
export const APPLY_SESSION_SETTINGS: Readonly<Record<string, string>> = {
  ...VALUE_TEXT_SETTINGS,
  array_nulls: 'on',
  xmloption: 'content',
  default_transaction_isolation: 'read committed',
  statement_timeout: '0',
  lock_timeout: '0',
  idle_in_transaction_session_timeout: '0',
  client_min_messages: 'warning',
};

/**
 * What an apply connection sets once connected, besides APPLY_SESSION_SETTINGS: replica
 * role (no triggers, no foreign key checks, as the source already ran them), its commit
 * durability, and planner settings that keep every apply statement on its keys. The
 * statements are planned generically once, for any number of rows: a hash or merge join
 * there would scan the whole table. Sequential scans are off too, as PostgreSQL's apply
 * worker always finds a row by its replica identity index: a plan made while a table is
 * small (pgbench's 1 branch and 10 tellers) scans it whole, every dead version of a hot
 * row on its pages included, for each change. A table with no usable index is still
 * scanned, the only plan there is.
 */
export function applySessionSql(synchronousCommit: string): string {
  return (
    `SET session_replication_role = replica; SET synchronous_commit = ${quoteLiteral(synchronousCommit)}; ` +
    'SET plan_cache_mode = force_generic_plan; SET enable_hashjoin = off; SET enable_mergejoin = off; ' +
    'SET enable_seqscan = off'
  );
}

/** `SET name = 'value'; ...` for sessions that were opened without startup settings. */
export function setStatements(settings: Readonly<Record<string, string>>): string {
  return Object.entries(settings)
    .map(([k, v]) => `SET ${quoteIdent(k)} = ${quoteLiteral(v)}`)
    .join('; ');
}
