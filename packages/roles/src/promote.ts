import { type Queryable, SqlState, sqlStateOf } from '@pgfleet/connection';
import { messageOf, PromoteError } from './errors.js';
import { currentTimeline } from './timeline.js';

export interface PromoteOptions {
  /** Passed to pg_promote(wait => true, wait_seconds). */
  waitSeconds: number;
  /** Node name for error messages. */
  node?: string;
}

export interface PromoteResult {
  /** The new timeline (the old one + 1 after a normal promotion). */
  timeline: number;
}

/**
 * Promotes a standby with pg_promote(true, waitSeconds) and checks that it really left
 * recovery. Throws PromoteError: NOT_IN_RECOVERY (already a primary), PROMOTE_TIMEOUT
 * (pg_promote returned false: promotion may still complete later), PROMOTE_NOT_VERIFIED,
 * PROMOTE_FAILED.
 */
export async function promote(q: Queryable, opts: PromoteOptions): Promise<PromoteResult> {
  const where = opts.node ? ` ${opts.node}` : '';
  const details = opts.node ? { node: opts.node } : {};
  if (!Number.isInteger(opts.waitSeconds) || opts.waitSeconds < 1) {
    throw new TypeError(`promote: waitSeconds must be a positive integer, got ${opts.waitSeconds}`);
  }
  let promoted: boolean;
  try {
    const { rows } = await q.query('SELECT pg_promote(true, $1::int) AS promoted', [opts.waitSeconds]);
    promoted = rows[0]?.promoted === true;
  } catch (err) {
    if (sqlStateOf(err) === SqlState.OBJECT_NOT_IN_PREREQUISITE_STATE) {
      throw new PromoteError(
        'NOT_IN_RECOVERY',
        `cannot promote${where}: it is not a standby (recovery is not in progress)`,
        details,
        {
          cause: err,
        },
      );
    }
    throw new PromoteError('PROMOTE_FAILED', `pg_promote()${where} failed: ${messageOf(err)}`, details, {
      cause: err,
    });
  }
  if (!promoted) {
    throw new PromoteError(
      'PROMOTE_TIMEOUT',
      `standby${where} did not finish promotion within ${opts.waitSeconds} s; it may still complete, check its role before retrying`,
      { ...details, waitSeconds: opts.waitSeconds },
    );
  }
  const { rows } = await q.query('SELECT pg_is_in_recovery() AS in_recovery');
  if (rows[0]?.in_recovery !== false) {
    throw new PromoteError(
      'PROMOTE_NOT_VERIFIED',
      `pg_promote()${where} returned true but the node still reports pg_is_in_recovery() = true`,
      details,
    );
  }
  return { timeline: await currentTimeline(q) };
}
