import { quoteLiteral, SqlState, sqlStateOf } from '@pgfleet/connection';
import { formatLsn, type Lsn, parseLsn } from '@pgfleet/wal';
import type pg from 'pg';
import type { Logger } from 'pino';

/**
 * How far an apply committed, recorded in the data (pgfleet.apply_progress) as well as in
 * the replication origin.
 *
 * Origin progress alone can claim a transaction that never committed. The apply names a
 * transaction's end LSN (pg_replication_origin_xact_setup) just before its COMMIT; if the
 * backend ends between the two (pg_terminate_backend, a fast shutdown of the server), the
 * transaction aborts, yet from PostgreSQL 16 its abort record moves the origin to that LSN,
 * and on every version the apply session's exit commits a cleanup of its pg_temp objects
 * that carries the session's origin with the same stale LSN. That transaction would then be
 * skipped for good (seen once in CI: a row missing on one node after add-node paused an
 * apply by terminating its session).
 *
 * So every transaction that sets up an origin's progress also writes the same end LSN into
 * pgfleet.apply_progress, in the same transaction: the row only ever says what committed.
 * Whatever reads progress to resume or to acknowledge reads the lesser of the two, and a
 * session that starts where the origin is ahead of its row rewinds the origin to the row
 * (reconcileOriginProgress), so the lost transaction is streamed and applied again.
 */

/** The row update of the hot path: `lsnSql` is an SQL expression (a parameter, an array element). */
export function markProgressSql(origin: string, lsnSql: string): string {
  return `UPDATE pgfleet.apply_progress SET end_lsn = ${lsnSql} WHERE origin = ${quoteLiteral(origin)}`;
}

/** Creates or moves the row: for the rare writers of progress (add-node, resync). */
export function setProgressMarkSql(origin: string, lsn: Lsn): string {
  return `INSERT INTO pgfleet.apply_progress (origin, end_lsn) VALUES (${quoteLiteral(origin)}, ${quoteLiteral(formatLsn(lsn))}::pg_lsn) ON CONFLICT (origin) DO UPDATE SET end_lsn = EXCLUDED.end_lsn`;
}

/**
 * SQL expression: the committed progress of the origin named by `originParam` (a
 * parameter placeholder), '0/0' if none. With `flush`, what it returns is also on disk: the
 * row is read in the statement's snapshot, and the origin's flush (pg_replication_origin_progress
 * with true) covers every commit visible in it, since the origin moves inside the commit,
 * before the transaction becomes visible.
 */
export function committedProgressSql(originParam: string, flush: boolean): string {
  return `least(coalesce(pg_replication_origin_progress(${originParam}, ${flush}), '0/0'),
                coalesce((SELECT end_lsn FROM pgfleet.apply_progress WHERE origin = ${originParam}), 'FFFFFFFF/FFFFFFFF'))`;
}

/** The same for the origin this session has set up (named by `originParam`). */
export function sessionCommittedProgressSql(originParam: string, flush: boolean): string {
  return `least(coalesce(pg_replication_origin_session_progress(${flush}), '0/0'),
                coalesce((SELECT end_lsn FROM pgfleet.apply_progress WHERE origin = ${originParam}), 'FFFFFFFF/FFFFFFFF'))`;
}

export interface Reconciled {
  /** Where the apply resumes: origin progress, after any rewind. */
  progress: Lsn;
  /** The origin claimed a transaction that did not commit: it was moved back. */
  rewound: { from: Lsn; to: Lsn } | null;
}

/**
 * Before an apply session sets up `origin` (`db` has not): makes origin progress and its
 * row agree. No row yet (a new edge, or metadata from before the row existed): the row is
 * created at origin progress. Row ahead of the origin (the origin was dropped and created
 * again, or moved back by hand): the row follows the origin. Origin ahead of the row: the
 * origin claims a transaction that did not commit and is moved back to the row. A session
 * still holding the origin (the ended one, exiting) makes this wait for it.
 */
export async function reconcileOriginProgress(
  db: pg.Client,
  origin: string,
  opts: { logger?: Logger; timeoutMs?: number } = {},
): Promise<Reconciled> {
  const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
  for (;;) {
    try {
      return await reconcileOnce(db, origin, opts.logger);
    } catch (err) {
      if (sqlStateOf(err) !== SqlState.OBJECT_IN_USE || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

async function reconcileOnce(db: pg.Client, origin: string, logger?: Logger): Promise<Reconciled> {
  await db.query('BEGIN');
  try {
    const { rows } = await db.query(
      `SELECT coalesce(pg_replication_origin_progress($1, false), '0/0')::text AS origin,
              (SELECT end_lsn::text FROM pgfleet.apply_progress WHERE origin = $1) AS mark`,
      [origin],
    );
    const at = parseLsn(rows[0].origin);
    const mark = rows[0].mark === null ? null : parseLsn(rows[0].mark);
    let rewound: Reconciled['rewound'] = null;
    if (mark === null || mark > at) {
      await db.query(setProgressMarkSql(origin, at));
    } else if (mark < at) {
      // Refused while a session has the origin set up (OBJECT_IN_USE): the caller waits.
      await db.query('SELECT pg_replication_origin_advance($1, $2::pg_lsn)', [origin, formatLsn(mark)]);
      rewound = { from: at, to: mark };
      logger?.warn(
        { origin, from: formatLsn(at), to: formatLsn(mark) },
        'origin progress named a transaction that did not commit (its session ended between naming it and committing): moved back, the transaction is applied again',
      );
    }
    await db.query('COMMIT');
    return { progress: rewound ? rewound.to : at, rewound };
  } catch (err) {
    await db.query('ROLLBACK').catch(() => {});
    throw err;
  }
}

/** Drops the row of an origin that was dropped (a node without the table has none). */
export async function forgetProgressMark(db: pg.Client, origin: string): Promise<void> {
  try {
    await db.query('DELETE FROM pgfleet.apply_progress WHERE origin = $1', [origin]);
  } catch (err) {
    if (sqlStateOf(err) !== SqlState.UNDEFINED_TABLE) throw err;
  }
}
