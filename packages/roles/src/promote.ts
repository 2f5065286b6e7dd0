import { type Queryable, quoteIdent, quoteLiteral, SqlState, sqlStateOf } from '@pgfleet/connection';
import { messageOf, PromoteError } from './errors.js';
import { waitForSetting } from './reload.js';
import { currentTimeline } from './timeline.js';

export interface PromoteOptions {
  /** Give up (PROMOTE_TIMEOUT) when the node is still in recovery after this long. */
  waitSeconds: number;
  /** Node name for error messages. */
  node?: string;
  /**
   * Settings the new primary must run with (e.g. `{ synchronous_standby_names: '' }`):
   * written with ALTER SYSTEM before the promotion, loaded by a reload once it is done.
   */
  settings?: Record<string, string>;
  /** How often to look whether recovery ended. Default 10 ms. */
  pollMs?: number;
}

export interface PromoteResult {
  /** The new timeline (the old one + 1 after a normal promotion). */
  timeline: number;
  /** From the promote request to the end of recovery. */
  elapsedMs: number;
  /** Times the startup process had to be woken from its retry sleep (see below). */
  wakeups: number;
}

/*
 * Why not pg_promote(wait => true), and why no reload right before promoting.
 *
 * pg_promote(true) polls for the end of recovery only every 100 ms (WAITS_PER_SECOND in
 * xlogfuncs.c), so we ask with wait => false and poll ourselves.
 *
 * The startup process waits for WAL in WaitForWALToBecomeAvailable (xlogrecovery.c, 15 and
 * later). With its primary gone, it cycles: walreceiver fails -> sleep what is left of
 * wal_retrieve_retry_interval since the last failure (on recoveryWakeupLatch) -> pg_wal ->
 * start a walreceiver again. A promote request sets that latch and is noticed in the pg_wal
 * step. But when the request arrives while a walreceiver is starting, the startup process
 * notices it in the streaming step instead (CheckForStandbyTrigger there), marks the source
 * failed, and goes through the failure branch again: it sleeps the rest of
 * wal_retrieve_retry_interval with the latch already consumed, default 5 s, before it
 * finishes recovery. A SIGHUP wakes that sleep too, so a reload a few ms before pg_promote()
 * (clearing synchronous_standby_names, say) makes the startup process restart the walreceiver
 * just in time for exactly this race; without the reload it is rarer but still possible.
 * So: settings go in with ALTER SYSTEM before and are loaded after, and while the startup
 * process sits in that sleep (wait event RecoveryRetrieveRetryInterval) after the request, a
 * reload sets the latch again and it finishes at once: LocalPromoteIsTriggered is already set.
 */
const POLL_SQL = `SELECT pg_is_in_recovery() AS in_recovery,
  (SELECT wait_event FROM pg_stat_activity WHERE backend_type = 'startup') AS startup_wait`;
const RETRY_SLEEP = 'RecoveryRetrieveRetryInterval';
/** Let the promote signal reach the startup process before deciding it sleeps through it. */
const WAKE_AFTER_MS = 20;
const WAKE_EVERY_MS = 50;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Promotes a standby and checks that it really left recovery. Throws PromoteError:
 * NOT_IN_RECOVERY (already a primary), PROMOTE_TIMEOUT (still in recovery after
 * waitSeconds: promotion may complete later), PROMOTE_FAILED.
 */
export async function promote(q: Queryable, opts: PromoteOptions): Promise<PromoteResult> {
  const where = opts.node ? ` ${opts.node}` : '';
  const details = opts.node ? { node: opts.node } : {};
  if (!Number.isInteger(opts.waitSeconds) || opts.waitSeconds < 1) {
    throw new TypeError(`promote: waitSeconds must be a positive integer, got ${opts.waitSeconds}`);
  }
  const settings = Object.entries(opts.settings ?? {});
  try {
    for (const [name, value] of settings)
      await q.query(`ALTER SYSTEM SET ${quoteIdent(name)} = ${quoteLiteral(value)}`);
    await q.query('SELECT pg_promote(false)');
  } catch (err) {
    if (sqlStateOf(err) === SqlState.OBJECT_NOT_IN_PREREQUISITE_STATE) {
      throw new PromoteError(
        'NOT_IN_RECOVERY',
        `cannot promote${where}: it is not a standby (recovery is not in progress)`,
        details,
        { cause: err },
      );
    }
    throw new PromoteError('PROMOTE_FAILED', `pg_promote()${where} failed: ${messageOf(err)}`, details, {
      cause: err,
    });
  }
  const started = performance.now();
  const deadline = started + opts.waitSeconds * 1000;
  let wakeups = 0;
  let lastWake = started;
  for (;;) {
    const { rows } = await q.query(POLL_SQL);
    const now = performance.now();
    if (rows[0]?.in_recovery === false) break;
    if (now > deadline)
      throw new PromoteError(
        'PROMOTE_TIMEOUT',
        `standby${where} did not finish promotion within ${opts.waitSeconds} s; it may still complete, check its role before retrying`,
        { ...details, waitSeconds: opts.waitSeconds },
      );
    if (
      rows[0]?.startup_wait === RETRY_SLEEP &&
      now - started >= WAKE_AFTER_MS &&
      now - lastWake >= WAKE_EVERY_MS
    ) {
      await q.query('SELECT pg_reload_conf()');
      wakeups++;
      lastWake = now;
    }
    await sleep(opts.pollMs ?? 10);
  }
  const elapsedMs = performance.now() - started;
  if (settings.length > 0) {
    await q.query('SELECT pg_reload_conf()');
    for (const [name, value] of settings) await waitForSetting(q, name, (v) => v === value, 5000, 5);
  }
  return { timeline: await currentTimeline(q), elapsedMs, wakeups };
}
