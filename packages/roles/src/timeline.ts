import type { Queryable } from '@pgfleet/connection';
import { RoleError } from './errors.js';

/** The timeline is the first 8 hex digits of a WAL file name (xlog_internal.h, XLogFileName). */
export function timelineFromWalFileName(name: string): number {
  if (!/^[0-9A-F]{24}$/.test(name)) {
    throw new RoleError('UNEXPECTED_RESULT', `not a WAL file name: ${JSON.stringify(name)}`, {
      walFile: name,
    });
  }
  return Number.parseInt(name.slice(0, 8), 16);
}

/*
 * On a primary, pg_control_checkpoint().timeline_id is the timeline of the last checkpoint,
 * which stays on the old timeline after a promotion until the next checkpoint completes
 * (promotion only requests it). The WAL file that pg_current_wal_lsn() falls in is named
 * after the insert timeline, so it is right at once.
 * On a standby, pg_walfile_name() is not allowed; the WAL receiver's received_tli is the
 * timeline it streams, and the last restartpoint's timeline is the fallback when the receiver
 * is not running.
 */
export const TIMELINE_COLUMNS = `CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_walfile_name(pg_current_wal_lsn()) END AS wal_file,
  CASE WHEN pg_is_in_recovery() THEN COALESCE(
    (SELECT NULLIF(received_tli, 0) FROM pg_stat_wal_receiver),
    (SELECT timeline_id FROM pg_control_checkpoint())) END AS standby_tli`;

const TIMELINE_SQL = `SELECT pg_is_in_recovery() AS in_recovery, ${TIMELINE_COLUMNS}`;

export interface TimelineRow {
  in_recovery: boolean;
  wal_file: string | null;
  standby_tli: number | null;
}

export function timelineFromRow(row: TimelineRow): number {
  if (row.wal_file) return timelineFromWalFileName(row.wal_file);
  if (row.standby_tli !== null && row.standby_tli !== undefined) return Number(row.standby_tli);
  throw new RoleError('UNEXPECTED_RESULT', 'could not determine the current timeline', { row });
}

/** The node's current timeline (see TIMELINE_SQL for where it comes from on each role). */
export async function currentTimeline(q: Queryable): Promise<number> {
  const { rows } = await q.query(TIMELINE_SQL);
  const row = rows[0] as TimelineRow | undefined;
  if (!row) throw new RoleError('UNEXPECTED_RESULT', 'timeline query returned no row');
  return timelineFromRow(row);
}
