import { quoteLiteral } from '@pgfleet/connection';
import type pg from 'pg';
import type { ConflictLogSettings } from './config.js';
import { LOCK_CLASS } from './ha/claim.js';

/**
 * Second key of the advisory lock (first: LOCK_CLASS, as every pgfleet-mm lock) under which
 * one session at a time prunes a node's pgfleet.conflicts: every edge into the node prunes
 * from its status tick, and the others skip meanwhile.
 */
export const PRUNE_LOCK_NAME = 'conflicts prune';

/** Rows one DELETE looks at (the lowest ids), and how many such DELETEs one prune runs at most. */
const PRUNE_BATCH = 10_000;
const PRUNE_MAX_BATCHES = 50;

/**
 * One DELETE of the oldest conflict records past retention. It looks at the `$1` lowest ids
 * only (the primary key: no index on time to maintain per recorded conflict; ids follow the
 * time of recording, both are taken as the row is inserted) and deletes those recorded more
 * than `$2` hours ago, or more than `$3` ids below the newest (ids grow with every record,
 * so at most `$3` are kept; rolled-back records leave gaps, so sometimes fewer). 0 switches
 * either rule off. Only the session that gets the node's prune lock deletes anything.
 */
const PRUNE_CONFLICTS_SQL = `WITH gate AS MATERIALIZED (
       SELECT pg_try_advisory_xact_lock(${LOCK_CLASS}, hashtext(${quoteLiteral(PRUNE_LOCK_NAME)})) AS ok),
     head AS MATERIALIZED (
       SELECT id, recorded_at FROM pgfleet.conflicts WHERE (SELECT ok FROM gate) ORDER BY id LIMIT $1::int),
     newest AS (SELECT max(id) AS id FROM pgfleet.conflicts)
DELETE FROM pgfleet.conflicts c USING head h
 WHERE c.id = h.id
   AND (($2::int > 0 AND h.recorded_at < now() - $2::int * interval '1 hour')
        OR ($3::int8 > 0 AND h.id <= (SELECT id FROM newest) - $3::int8))`;

interface PruneOptions {
  batch?: number;
  maxBatches?: number;
}

/**
 * Deletes the conflict records of a node past `settings` (see PRUNE_CONFLICTS_SQL), one
 * batch per statement (each its own transaction, so locks are short and progress is kept),
 * until a batch finds fewer rows to delete than it looked at or `maxBatches` ran (the
 * next prune goes on). Returns how many it deleted; 0 as well when another session was
 * pruning the node.
 */
export async function pruneConflicts(
  db: pg.Client,
  settings: Pick<ConflictLogSettings, 'retentionHours' | 'maxRows'>,
  opts: PruneOptions = {},
): Promise<number> {
  if (settings.retentionHours === 0 && settings.maxRows === 0) return 0;
  const batch = opts.batch ?? PRUNE_BATCH;
  const maxBatches = opts.maxBatches ?? PRUNE_MAX_BATCHES;
  let deleted = 0;
  for (let i = 0; i < maxBatches; i++) {
    const r = await db.query(PRUNE_CONFLICTS_SQL, [batch, settings.retentionHours, settings.maxRows]);
    const n = r.rowCount ?? 0;
    deleted += n;
    if (n < batch) break;
  }
  return deleted;
}
