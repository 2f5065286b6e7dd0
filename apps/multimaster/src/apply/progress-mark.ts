import { quoteLiteral, quoteQualified, SqlState, sqlStateOf } from '@pgfleet/connection';
import { formatLsn, type Lsn, parseLsn, parseNullableLsn } from '@pgfleet/wal';
import type pg from 'pg';
import type { Logger } from 'pino';

/**
 * How far an apply committed, when the replication origin alone may say more.
 *
 * Origin progress can claim a transaction that never committed. The apply names a
 * transaction's end LSN (pg_replication_origin_xact_setup) just before its COMMIT; if the
 * backend ends between the two (pg_terminate_backend, a fast shutdown of the server), the
 * transaction aborts, yet from PostgreSQL 16 its abort record moves the origin to that LSN,
 * and on every version the apply session's exit commits a cleanup of its pg_temp objects
 * that carries the session's origin with the same stale LSN. That transaction would then be
 * skipped for good (seen once in CI: a row missing on one node after add-node paused an
 * apply by terminating its session).
 *
 * So every transaction that names an origin's progress first leaves a witness in two
 * sequences of that origin (sequences are not transactional: the values stay whatever
 * becomes of the transaction), in this order: `<origin>:lsn` := the progress the origin had
 * when the transaction began (committed, since only one session holds an origin), then
 * `<origin>:xid` := the transaction's own xid. The last transaction to name progress is
 * the one whose xid the witness holds, so:
 * - that xid committed (or there is none): origin progress is what committed;
 * - it aborted: the origin says either `<origin>:lsn` or the aborted transaction's end, and
 *   `<origin>:lsn` is what committed.
 * The order matters after a crash: WAL keeps a prefix, so a surviving xid has its LSN with it.
 * An xid too old for pg_xact_status (the edge stopped for hundreds of millions of
 * transactions right after such an end) is taken as committed.
 *
 * Two setvals cost about 2 µs per transaction against 5 µs for updating a row (measured in
 * a procedure of 50,000 one-row transactions). Whatever reads progress to resume or to
 * acknowledge reads committedProgressSql, and a session that takes an origin moves it
 * back when the witness says so (setUpOrigin), so the lost transaction is streamed and
 * applied again.
 */

const SESSION_PROGRESS = `coalesce(pg_replication_origin_session_progress(false), '0/0')`;

type WitnessPart = 'lsn' | 'xid';

/** Name of one witness sequence of an origin, in the pgfleet schema: `<origin>:<part>`. */
const witnessName = (origin: string, part: WitnessPart) => `${origin}:${part}`;

/** The two sequences holding `origin`'s witness (quoted, qualified). */
export function witnessSequences(origin: string): { lsn: string; xid: string } {
  return {
    lsn: quoteQualified('pgfleet', witnessName(origin, 'lsn')),
    xid: quoteQualified('pgfleet', witnessName(origin, 'xid')),
  };
}

/**
 * The witness of the transaction about to name `origin`'s progress, as two SQL
 * expressions to evaluate in this order in the session that holds the origin, before
 * pg_replication_origin_xact_setup.
 */
export function witnessCalls(origin: string): [string, string] {
  const s = witnessSequences(origin);
  return [
    `setval(${quoteLiteral(s.lsn)}::regclass, (${SESSION_PROGRESS} - '0/0'::pg_lsn)::int8)`,
    `setval(${quoteLiteral(s.xid)}::regclass, txid_current())`,
  ];
}

/** witnessCalls as statements, for a transaction driven from the client. */
export function witnessStatement(origin: string): string {
  return witnessCalls(origin)
    .map((c) => `SELECT ${c}`)
    .join('; ');
}

/** Last value of one of the witness sequences of the origin named by the SQL text `originSql` (witnessName, in SQL). */
function witnessValueSql(originSql: string, part: WitnessPart): string {
  return `pg_sequence_last_value(to_regclass(format('pgfleet.%I', ${originSql} || ${quoteLiteral(witnessName('', part))})))`;
}

/** SQL: the fate of the witness's xid `xSql` (text, pg_xact_status's words), null when there is none or it is too old or unknown here. */
function witnessStatusSql(xSql: string): string {
  return `CASE WHEN ${xSql} IS NULL OR ${xSql} <= 0 OR ${xSql} >= pg_snapshot_xmax(pg_current_snapshot())::text::int8 THEN NULL
               ELSE pg_xact_status(${xSql}::text::xid8) END`;
}

/**
 * SQL expression: the committed progress of the origin named by `originParam` (a
 * parameter placeholder), '0/0' if none; `held`: the origin this session has set up. With
 * `flush`, what it returns is also on disk (the origin's flushed progress, or less).
 *
 * Read in this order, each step LATERAL to the one before so that the planner keeps it:
 * origin, then the witness's xid, then its LSN. If the origin read claims a transaction
 * that aborted, that transaction had left its xid before: the xid read is that one (whose
 * LSN is what committed) or one of a later session, which moved the origin back first.
 */
export function committedProgressSql(originParam: string, flush: boolean, held = false): string {
  const origin = held
    ? `pg_replication_origin_session_progress(${flush})`
    : `pg_replication_origin_progress(${originParam}, ${flush})`;
  return `(SELECT CASE WHEN w.status IN ('aborted', 'in progress') THEN least(o.at, coalesce(w.lsn, o.at)) ELSE o.at END
     FROM (SELECT coalesce(${origin}, '0/0') AS at OFFSET 0) AS o,
          LATERAL (SELECT ${witnessValueSql(originParam, 'xid')} AS x WHERE o.at IS NOT NULL OFFSET 0) AS x,
          LATERAL (SELECT '0/0'::pg_lsn + ${witnessValueSql(originParam, 'lsn')} AS lsn, ${witnessStatusSql('x.x')} AS status
                    OFFSET 0) AS w)`;
}

/**
 * Locks the origin's gate row, if it has one, until the transaction ends. setUpOrigin
 * passes the gate before taking the origin, so a session that takes an origin away from
 * its holder (holdOrigins: it ends the holder) keeps the gate closed until it holds the
 * origin itself, and a replicator retrying its own setup waits instead of taking the
 * origin back in between.
 */
export const LOCK_ORIGIN_GATE_SQL = 'SELECT 1 FROM pgfleet.apply_origins WHERE origin = $1 FOR UPDATE';

/** The status pg_xact_status gives the witness's xid (null: none, or too old to tell). */
export type WitnessStatus = 'committed' | 'aborted' | 'in progress' | null;

/**
 * Where an origin taken by a new session must stand: `at` its progress, `witnessed` and
 * `status` its witness. Returns the LSN to move it back to, or null to leave it.
 * "in progress" cannot be seen by a session holding the origin (the holder's transaction
 * ends before it lets the origin go); the caller treats it as the origin still in use.
 */
export function originRewind(at: Lsn, witnessed: Lsn | null, status: WitnessStatus): Lsn | null {
  if (status !== 'aborted' || witnessed === null) return null;
  return at > witnessed ? witnessed : null;
}

export interface Reconciled {
  /** Where the apply resumes: origin progress, after any rewind. */
  progress: Lsn;
  /** The origin claimed a transaction that did not commit: it was moved back. */
  rewound: { from: Lsn; to: Lsn } | null;
}

/**
 * Creates the gate row and the witness sequences of `origin` if missing: where the origin
 * is created (init, add-node), and again by every session that takes it (setUpOrigin,
 * holdOrigins), for origins created otherwise (dead-letter replay's).
 */
export async function ensureOriginWitness(db: pg.Client, origin: string): Promise<void> {
  await db.query('INSERT INTO pgfleet.apply_origins (origin) VALUES ($1) ON CONFLICT (origin) DO NOTHING', [
    origin,
  ]);
  const s = witnessSequences(origin);
  const { rows } = await db.query(
    'SELECT to_regclass($1) IS NOT NULL AS lsn, to_regclass($2) IS NOT NULL AS xid',
    [s.lsn, s.xid],
  );
  if (!rows[0].lsn) await db.query(`CREATE SEQUENCE IF NOT EXISTS ${s.lsn} MINVALUE 0`);
  if (!rows[0].xid) await db.query(`CREATE SEQUENCE IF NOT EXISTS ${s.xid} MINVALUE 0`);
}

/**
 * Sets `origin` up in `db`'s session (the apply session, before it applies anything),
 * first moving it back if its witness says it names a transaction that did not commit
 * (pg_replication_origin_advance, refused while set up, so the session lets it go for
 * that moment and takes it again).
 *
 * The origin's gate is passed first (LOCK_ORIGIN_GATE_SQL), so a hold taking the origin
 * away from this edge's session is not raced. The witness is read with the origin held:
 * the session before has fully ended (an exiting backend holds the origin until after its
 * transaction has ended), and no other session names progress meanwhile. The gate row
 * stays locked until the origin is held again, so a hold cannot take it in that moment. A
 * session still holding the origin makes this wait up to `timeoutMs`, then OBJECT_IN_USE
 * is thrown.
 */
export async function setUpOrigin(
  db: pg.Client,
  origin: string,
  opts: { logger?: Logger; timeoutMs?: number } = {},
): Promise<Reconciled> {
  const deadline = Date.now() + (opts.timeoutMs ?? 2_000);
  for (;;) {
    try {
      const done = await setUpOnce(db, origin, opts.logger);
      if (done !== 'busy') return done;
      if (Date.now() > deadline)
        throw new Error(
          `the last transaction to name ${origin}'s progress is still running (pg_xact_status says "in progress")`,
        );
    } catch (err) {
      if (sqlStateOf(err) !== SqlState.OBJECT_IN_USE || Date.now() > deadline) throw err;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function setUpOnce(db: pg.Client, origin: string, logger?: Logger): Promise<Reconciled | 'busy'> {
  await db.query('BEGIN');
  try {
    await db.query(LOCK_ORIGIN_GATE_SQL, [origin]);
    await db.query('SELECT pg_replication_origin_session_setup($1)', [origin]);
    // A gate row this inserts is this transaction's alone until it commits.
    await ensureOriginWitness(db, origin);
    const { rows } = await db.query(
      `SELECT ${SESSION_PROGRESS}::text AS at, ('0/0'::pg_lsn + ${witnessValueSql('$1::text', 'lsn')})::text AS lsn,
              ${witnessStatusSql('x')} AS status
         FROM (SELECT ${witnessValueSql('$1::text', 'xid')} AS x) AS wx`,
      [origin],
    );
    const status = rows[0].status as WitnessStatus;
    if (status === 'in progress') {
      await db.query('ROLLBACK');
      await db.query('SELECT pg_replication_origin_session_reset()');
      return 'busy';
    }
    const at = parseLsn(rows[0].at);
    const to = originRewind(at, parseNullableLsn(rows[0].lsn), status);
    if (to !== null) {
      await db.query('SELECT pg_replication_origin_session_reset()');
      await db.query('SELECT pg_replication_origin_advance($1, $2::pg_lsn)', [origin, formatLsn(to)]);
      await db.query('SELECT pg_replication_origin_session_setup($1)', [origin]);
      logger?.warn(
        { origin, from: formatLsn(at), to: formatLsn(to) },
        'origin progress named a transaction that did not commit (its session ended between naming it and committing): moved back, the transaction is applied again',
      );
    }
    await db.query('COMMIT');
    return { progress: to ?? at, rewound: to === null ? null : { from: at, to } };
  } catch (err) {
    await db.query('ROLLBACK').catch(() => {});
    await db.query('SELECT pg_replication_origin_session_reset()').catch(() => {});
    throw err;
  }
}

/** Drops the gate row and the witness of an origin that was dropped. */
export async function forgetOrigin(db: pg.Client, origin: string): Promise<void> {
  const s = witnessSequences(origin);
  await db.query(`DROP SEQUENCE IF EXISTS ${s.lsn}, ${s.xid}`);
  try {
    await db.query('DELETE FROM pgfleet.apply_origins WHERE origin = $1', [origin]);
  } catch (err) {
    if (sqlStateOf(err) !== SqlState.UNDEFINED_TABLE) throw err;
  }
}
