import type { Queryable } from '@pgfleet/connection';
import { FenceError, messageOf } from './errors.js';
import { alterSystemAndReload, readConfiguredSetting, waitForSetting } from './reload.js';

const SETTING = 'default_transaction_read_only';

export interface FenceOptions {
  /** Why we fence; returned and put in error messages (for logs and status). */
  reason?: string;
  /** Node name for error messages. */
  node?: string;
  /** How long to wait for the reload to be visible. Default 5000 ms. */
  timeoutMs?: number;
  /** Client sessions with these application_names survive (e.g. the keeper's other connections). */
  keepApplicationNames?: string[];
  /** How long pg_terminate_backend waits for each session to exit. Default 1000 ms. */
  terminateWaitMs?: number;
}

export interface FenceResult {
  /** Client sessions terminated. */
  terminated: number;
  reason?: string;
}

/*
 * A soft fence: every new transaction defaults to read-only, so ordinary writes fail with
 * 25006. Sessions opened before the reload may be inside a read-write transaction; they are
 * terminated. Walsenders (backend_type 'walsender') stay so standbys keep streaming, and our
 * own session stays. A client that explicitly runs SET default_transaction_read_only = off or
 * BEGIN READ WRITE can still write: this stops applications, not a determined superuser.
 */
const TERMINATE_SQL = `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, $1::bigint))::int AS terminated
FROM pg_stat_activity
WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
  AND NOT (coalesce(application_name, '') = ANY ($2::text[]))`;

/**
 * Makes the node refuse writes from new transactions and terminates client sessions:
 * ALTER SYSTEM + reload, then terminate at once (an open read-write transaction is not
 * stopped by the new default), then wait until the reload is visible, then terminate again
 * (sessions forked by the postmaster before it reloaded start read-write).
 * Throws FenceError; the caller must treat the node as NOT fenced then. When the postmaster
 * does not run the reload (stopped, hung), the existing sessions are still terminated before
 * FENCE_NOT_APPLIED is thrown: pg_terminate_backend() signals them directly.
 */
export async function fence(q: Queryable, opts: FenceOptions = {}): Promise<FenceResult> {
  const where = opts.node ? ` ${opts.node}` : '';
  const details: Record<string, unknown> = opts.node ? { node: opts.node } : {};
  if (opts.reason) details.reason = opts.reason;
  const because = opts.reason ? ` (fencing because: ${opts.reason})` : '';
  const timeoutMs = opts.timeoutMs ?? 5000;
  const terminate = async (): Promise<number> => {
    try {
      const { rows } = await q.query(TERMINATE_SQL, [
        opts.terminateWaitMs ?? 1000,
        opts.keepApplicationNames ?? [],
      ]);
      return Number(rows[0]?.terminated ?? 0);
    } catch (err) {
      throw new FenceError(
        'FENCE_FAILED',
        `could not terminate client sessions${where}: ${messageOf(err)}${because}`,
        details,
        { cause: err },
      );
    }
  };
  try {
    await alterSystemAndReload(q, SETTING, 'on');
  } catch (err) {
    throw new FenceError('FENCE_FAILED', `could not fence${where}: ${messageOf(err)}${because}`, details, {
      cause: err,
    });
  }
  let terminated = await terminate();
  const { ok, last } = await waitForSetting(q, SETTING, (v) => v === 'on', timeoutMs);
  if (!ok) {
    throw new FenceError(
      'FENCE_NOT_APPLIED',
      `${SETTING}${where} is still ${last} ${timeoutMs} ms after reload (${terminated} client sessions terminated); the node is NOT fenced${because}`,
      { ...details, actual: last, timeoutMs, terminated },
    );
  }
  terminated += await terminate();
  return opts.reason ? { terminated, reason: opts.reason } : { terminated };
}

export interface UnfenceOptions {
  node?: string;
  /** Default 5000 ms. */
  timeoutMs?: number;
}

/** Removes the fence (ALTER SYSTEM RESET default_transaction_read_only) and verifies it. */
export async function unfence(q: Queryable, opts: UnfenceOptions = {}): Promise<void> {
  const where = opts.node ? ` ${opts.node}` : '';
  const details: Record<string, unknown> = opts.node ? { node: opts.node } : {};
  const timeoutMs = opts.timeoutMs ?? 5000;
  try {
    await alterSystemAndReload(q, SETTING, null);
  } catch (err) {
    throw new FenceError('FENCE_FAILED', `could not unfence${where}: ${messageOf(err)}`, details, {
      cause: err,
    });
  }
  const { ok, last } = await waitForSetting(q, SETTING, (v) => v === 'off', timeoutMs);
  if (!ok) {
    throw new FenceError(
      'FENCE_NOT_APPLIED',
      `${SETTING}${where} is still ${last} ${timeoutMs} ms after ALTER SYSTEM RESET and reload; ` +
        'is it set in postgresql.conf?',
      { ...details, actual: last, timeoutMs },
    );
  }
}

/** True when new sessions default to read-only (the configured value, not a session SET). */
export async function isFenced(q: Queryable): Promise<boolean> {
  return (await readConfiguredSetting(q, SETTING)) === 'on';
}
