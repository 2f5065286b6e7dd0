/**
 * DDL of the `pgfleet` schema every node carries. Idempotent (IF NOT EXISTS / OR REPLACE),
 * so `init` can run it any number of times. The schema is never published, so nothing in
 * it is replicated: conflicts and dead letters are recorded on the node that met them.
 */
export const METADATA_DDL = [
  'CREATE SCHEMA IF NOT EXISTS pgfleet',
  `CREATE TABLE IF NOT EXISTS pgfleet.nodes (
     name text PRIMARY KEY,
     rank int NOT NULL,
     is_local boolean NOT NULL DEFAULT false,
     registered_at timestamptz NOT NULL DEFAULT now())`,
  `CREATE TABLE IF NOT EXISTS pgfleet.conflicts (
     id bigserial PRIMARY KEY,
     recorded_at timestamptz NOT NULL DEFAULT clock_timestamp(),
     edge text NOT NULL,
     source_node text NOT NULL,
     target_node text NOT NULL,
     table_schema text NOT NULL,
     table_name text NOT NULL,
     kind text NOT NULL,
     policy text NOT NULL,
     resolution text NOT NULL,
     reason text NOT NULL,
     key jsonb,
     local_row jsonb,
     remote_row jsonb,
     local_commit_ts timestamptz,
     local_origin text,
     remote_commit_ts timestamptz NOT NULL,
     remote_commit_lsn pg_lsn NOT NULL,
     remote_xid int8 NOT NULL)`,
  `CREATE TABLE IF NOT EXISTS pgfleet.dead_letters (
     id bigserial PRIMARY KEY,
     recorded_at timestamptz NOT NULL DEFAULT clock_timestamp(),
     edge text NOT NULL,
     source_node text NOT NULL,
     target_node text NOT NULL,
     commit_lsn pg_lsn NOT NULL,
     end_lsn pg_lsn NOT NULL,
     xid int8 NOT NULL,
     commit_ts timestamptz NOT NULL,
     table_schema text,
     table_name text,
     change_kind text,
     change jsonb,
     sqlstate text,
     error text NOT NULL,
     policy text NOT NULL,
     action text NOT NULL,
     attempts int NOT NULL DEFAULT 1)`,
  `CREATE TABLE IF NOT EXISTS pgfleet.skip_requests (
     edge text NOT NULL,
     commit_lsn pg_lsn NOT NULL,
     requested_at timestamptz NOT NULL DEFAULT now(),
     PRIMARY KEY (edge, commit_lsn))`,
  // Raised by the pipelined apply when a set-based statement touched fewer rows than it
  // should (a row missing, or last changed by another node): the transaction is then
  // replayed on the careful path, which detects and resolves the conflict row by row.
  `CREATE OR REPLACE FUNCTION pgfleet.expect_rows(got int8, want int8) RETURNS int8
     LANGUAGE plpgsql AS $$
     BEGIN
       IF got IS DISTINCT FROM want THEN
         RAISE EXCEPTION 'pgfleet: % of % rows matched without conflict', got, want USING ERRCODE = 'PF001';
       END IF;
       RETURN got;
     END $$`,
  // First statement of every pipelined transaction: the one before it must have committed.
  // If it failed (its COMMIT became a ROLLBACK), every later transaction fails here, so
  // progress never skips a transaction.
  `CREATE OR REPLACE FUNCTION pgfleet.apply_guard(expected pg_lsn) RETURNS boolean
     LANGUAGE plpgsql AS $$
     DECLARE got pg_lsn := coalesce(pg_replication_origin_session_progress(false), '0/0');
     BEGIN
       IF got <> expected THEN
         RAISE EXCEPTION 'pgfleet: origin progress is %, expected %', got, expected USING ERRCODE = 'PF002';
       END IF;
       RETURN true;
     END $$`,
];

/** SQLSTATE raised by pgfleet.expect_rows. */
export const SQLSTATE_ROWS_DIFFER = 'PF001';
/** SQLSTATE raised by pgfleet.apply_guard. */
export const SQLSTATE_GUARD = 'PF002';
