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
 * (setUpOrigin), so the lost transaction is streamed and applied again.
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
 * parameter placeholder), '0/0' if none; `held`: the origin this session has set up. With
 * `flush`, what it returns is also on disk: the row is read in the statement's snapshot,
 * and the origin's flush (pg_replication_origin_progress with true) covers every commit
 * visible in it, since the origin moves inside the commit, before the transaction becomes
 * visible.
 */
export function committedProgressSql(originParam: string, flush: boolean, held = false): string {
  const origin = held
    ? `pg_replication_origin_session_progress(${flush})`
    : `pg_replication_origin_progress(${originParam}, ${flush})`;
  return `least(coalesce(${origin}, '0/0'),
                coalesce((SELECT end_lsn FROM pgfleet.apply_progress WHERE origin = ${originParam}), 'FFFFFFFF/FFFFFFFF'))`;
}

/**
 * Locks the origin's row, if it has one, until the transaction ends. It is the gate of an
 * origin: setUpOrigin passes it before taking the origin, so a session that takes an
 * origin away from its holder (holdOrigins: it ends the holder) keeps the gate closed until
 * it holds the origin itself, and a replicator retrying its own setup waits instead of
 * taking the origin back in between.
 */
export const LOCK_PROGRESS_MARK_SQL = 'SELECT 1 FROM pgfleet.apply_progress WHERE origin = $1 FOR UPDATE';

export interface Reconciled {
  /** Where the apply resumes: origin progress, after any rewind. */
  progress: Lsn;
  /** The origin claimed a transaction that did not commit: it was moved back. */
  rewound: { from: Lsn; to: Lsn } | null;
}

/**
 * Sets `origin` up in `db`'s session (the apply session, before it applies anything), first
 * making origin progress and its row agree. No row yet (a new edge, or metadata from
 * before the row existed): the row is created at origin progress. Row ahead of the origin
 * (the origin was dropped and created again): the row follows the origin. Origin ahead of
 * the row: the origin claims a transaction that did not commit and is moved back to the
 * row (pg_replication_origin_advance, refused while set up, so the session lets it go for
 * that moment).
 *
 * The row's lock is taken first (LOCK_PROGRESS_MARK_SQL), so a hold taking the origin away
 * from this edge's session is not raced. Both are read with the origin held, so no other
 * session commits through it meanwhile; the one before has fully ended (an exiting backend
 * holds the origin until after its last commit), and every writer of the row holds the
 * origin too. The row stays locked until the
 * origin is held again, so a writer that takes the origin in that moment waits for this
 * transaction before its own commit moves row and origin. A session still holding the
 * origin makes this wait up to `timeoutMs`, then OBJECT_IN_USE is thrown.
 */
export async function setUpOrigin(
  db: pg.Client,
  origin: string,
  opts: { logger?: Logger; timeoutMs?: number } = {},
): Promise<Reconciled> {
  const deadline = Date.now() + (opts.timeoutMs ?? 2_000);
  for (;;) {
    try {
      return await setUpOnce(db, origin, opts.logger);
    } catch (err) {
      if (sqlStateOf(err) !== SqlState.OBJECT_IN_USE || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

const SESSION_PROGRESS = `coalesce(pg_replication_origin_session_progress(false), '0/0')`;

async function setUpOnce(db: pg.Client, origin: string, logger?: Logger): Promise<Reconciled> {
  await db.query('BEGIN');
  try {
    await db.query(LOCK_PROGRESS_MARK_SQL, [origin]);
    await db.query('SELECT pg_replication_origin_session_setup($1)', [origin]);
    await db.query(
      `INSERT INTO pgfleet.apply_progress (origin, end_lsn) VALUES ($1, ${SESSION_PROGRESS}) ON CONFLICT (origin) DO NOTHING`,
      [origin],
    );
    const { rows } = await db.query(
      `SELECT end_lsn::text AS mark, ${SESSION_PROGRESS}::text AS at FROM pgfleet.apply_progress WHERE origin = $1 FOR UPDATE`,
      [origin],
    );
    const at = parseLsn(rows[0].at);
    const mark = parseLsn(rows[0].mark);
    let rewound: Reconciled['rewound'] = null;
    if (mark > at) {
      await db.query(markProgressSql(origin, '$1::pg_lsn'), [formatLsn(at)]);
    } else if (mark < at) {
      await db.query('SELECT pg_replication_origin_session_reset()');
      await db.query('SELECT pg_replication_origin_advance($1, $2::pg_lsn)', [origin, formatLsn(mark)]);
      await db.query('SELECT pg_replication_origin_session_setup($1)', [origin]);
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
    await db.query('SELECT pg_replication_origin_session_reset()').catch(() => {});
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
