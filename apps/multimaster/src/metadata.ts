/**
 * DDL of the `pgfleet` schema every node carries. Idempotent (IF NOT EXISTS / OR REPLACE),
 * so `init` can run it any number of times. The schema is never published, so nothing in
 * it is replicated: conflicts and dead letters are recorded on the node that met them.
 */
/**
 * Tables of the primary + standby handling (ha/*). Also run on their own by the replicator
 * before it first needs them, so a mesh set up by an older `init` works without re-running it.
 */
export const HA_METADATA_DDL = [
  'CREATE SCHEMA IF NOT EXISTS pgfleet',
  // Who drives each edge into this node: written by the replicator session that holds the
  // edge's advisory lock (ha/claim.ts). A row whose backend no longer holds the lock is stale.
  `CREATE TABLE IF NOT EXISTS pgfleet.edge_claims (
     edge text PRIMARY KEY,
     holder text NOT NULL,
     backend_pid int NOT NULL,
     claimed_at timestamptz NOT NULL)`,
  // On a source node: slots re-created after a failover (ha/resync.ts). While `state` is
  // 'pending', the slot's stream must not be consumed: its peer lacks the window before it.
  `CREATE TABLE IF NOT EXISTS pgfleet.slot_resync (
     slot text PRIMARY KEY,
     state text NOT NULL,
     consistent_point pg_lsn,
     updated_at timestamptz NOT NULL DEFAULT clock_timestamp())`,
  // On a peer: every re-sync of a failed-over node's window that it received.
  `CREATE TABLE IF NOT EXISTS pgfleet.resyncs (
     id bigserial PRIMARY KEY,
     recorded_at timestamptz NOT NULL DEFAULT clock_timestamp(),
     edge text NOT NULL,
     source_node text NOT NULL,
     source_server text,
     window_start timestamptz,
     previous_progress pg_lsn NOT NULL,
     consistent_point pg_lsn NOT NULL,
     transactions int NOT NULL,
     rows_sent int NOT NULL,
     rows_applied int NOT NULL,
     rows_skipped int NOT NULL,
     conflicts int NOT NULL,
     rows_failed int NOT NULL)`,
];

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
  // Set when a recorded transaction no longer explains a difference: `applied` (a paused
  // edge applied it after the cause was fixed), `skipped` (an operator skipped it; the
  // skipped_by_operator row records it), `replayed` (pgfleet-mm dead-letters --replay).
  'ALTER TABLE pgfleet.dead_letters ADD COLUMN IF NOT EXISTS resolved text',
  'ALTER TABLE pgfleet.dead_letters ADD COLUMN IF NOT EXISTS resolved_at timestamptz',
  // Number of rows in dead_letter_changes: every change of a skipped transaction.
  'ALTER TABLE pgfleet.dead_letters ADD COLUMN IF NOT EXISTS changes int NOT NULL DEFAULT 0',
  // Every change a dead letter skipped, in source order, as the source sent it: `old` is the
  // key (or the whole old row under REPLICA IDENTITY FULL), `new` the new row with columns
  // sent as unchanged TOAST left out; values are the source's text forms. A truncate has
  // no table, `new` = {"relations": ["schema.table", ...], "cascade": .., "restartIdentity": ..}.
  // No foreign key: the apply session runs with session_replication_role = replica, where
  // none would be checked anyway.
  `CREATE TABLE IF NOT EXISTS pgfleet.dead_letter_changes (
     dead_letter_id int8 NOT NULL,
     seq int NOT NULL,
     table_schema text,
     table_name text,
     kind text NOT NULL,
     old jsonb,
     new jsonb,
     PRIMARY KEY (dead_letter_id, seq))`,
  `CREATE INDEX IF NOT EXISTS dead_letter_changes_table ON pgfleet.dead_letter_changes (table_schema, table_name)`,
  `CREATE TABLE IF NOT EXISTS pgfleet.skip_requests (
     edge text NOT NULL,
     commit_lsn pg_lsn NOT NULL,
     requested_at timestamptz NOT NULL DEFAULT now(),
     PRIMARY KEY (edge, commit_lsn))`,
  ...HA_METADATA_DDL,
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
  // Per edge ending here: the newest commit time, per origin node, of the transactions its
  // source had applied before the last transaction applied here ({"node": timestamptz}).
  // Written in the same transaction as that one, so after a restart it is exact for the
  // position the edge resumes from. A local row version older than that, from that node,
  // was seen by the source: a change it made to the row did not race with it.
  `CREATE TABLE IF NOT EXISTS pgfleet.edge_seen (
     edge text PRIMARY KEY,
     seen jsonb NOT NULL)`,
  // One row per replication origin an apply has taken: its lock is the origin's gate (a
  // session taking the origin from its holder keeps it closed). The origin's witness lives
  // in the sequences pgfleet."<origin>:lsn" and pgfleet."<origin>:xid" (apply/progress-mark.ts).
  `CREATE TABLE IF NOT EXISTS pgfleet.apply_origins (
     origin text PRIMARY KEY)`,
  // Records the conflicts the set-based apply found (a JSON array of pgfleet.conflicts rows)
  // in the apply transaction; the edge reads them from there for its log and metrics once
  // committed (conflict-tail.ts). One resolved as 'error' raises PF003 instead: the transaction is rolled back
  // and the replicator replays it change by change, where policy error pauses the edge.
  `CREATE OR REPLACE FUNCTION pgfleet.record_conflicts(conf jsonb) RETURNS void
     LANGUAGE plpgsql AS $$
     DECLARE e jsonb;
     BEGIN
       IF conf IS NULL OR jsonb_array_length(conf) = 0 THEN RETURN; END IF;
       SELECT x INTO e FROM jsonb_array_elements(conf) AS x WHERE x->>'resolution' = 'error' LIMIT 1;
       IF e IS NOT NULL THEN
         RAISE EXCEPTION 'pgfleet: conflict % on %.% under policy error', e->>'kind', e->>'table_schema', e->>'table_name'
           USING ERRCODE = 'PF003', DETAIL = e::text;
       END IF;
       INSERT INTO pgfleet.conflicts (edge, source_node, target_node, table_schema, table_name, kind, policy, resolution, reason,
                                      key, local_row, remote_row, local_commit_ts, local_origin, remote_commit_ts, remote_commit_lsn, remote_xid)
       SELECT x.edge, x.source_node, x.target_node, x.table_schema, x.table_name, x.kind, x.policy, x.resolution, x.reason,
              x.key, x.local_row, x.remote_row, x.local_commit_ts, x.local_origin, x.remote_commit_ts, x.remote_commit_lsn, x.remote_xid
         FROM jsonb_to_recordset(conf) AS x(edge text, source_node text, target_node text, table_schema text, table_name text,
                                            kind text, policy text, resolution text, reason text, key jsonb, local_row jsonb,
                                            remote_row jsonb, local_commit_ts timestamptz, local_origin text,
                                            remote_commit_ts timestamptz, remote_commit_lsn pg_lsn, remote_xid int8);
     END $$`,
];

/** SQLSTATE raised by pgfleet.apply_guard. */
export const SQLSTATE_GUARD = 'PF002';
/** SQLSTATE raised by pgfleet.record_conflicts for a conflict under policy `error`. */
export const SQLSTATE_CONFLICT_ERROR = 'PF003';
