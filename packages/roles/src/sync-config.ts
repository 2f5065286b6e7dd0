import type { Queryable } from '@pgfleet/connection';
import { RoleError } from './errors.js';
import { alterSystemAndReload, waitForSetting } from './reload.js';
import { parseSyncStandbyNames, SyncStandbyNamesSyntaxError } from './sync-standby-names.js';

/** The synchronous_standby_names the server currently runs with ('' = asynchronous). */
export async function readSyncStandbyNames(q: Queryable): Promise<string> {
  const { rows } = await q.query('SHOW synchronous_standby_names');
  return String(rows[0]?.synchronous_standby_names ?? '');
}

export interface SetSyncStandbyNamesOptions {
  /** How long to wait for the reload to be visible. */
  timeoutMs: number;
  /** Node name for error messages. */
  node?: string;
}

/**
 * ALTER SYSTEM SET synchronous_standby_names + pg_reload_conf(), then polls SHOW until the
 * server runs with `value`. The value is checked against the server's grammar first, so a
 * typo is a RoleError SYNC_NAMES_INVALID and never reaches postgresql.auto.conf.
 * Setting '' releases commits waiting for a standby (the checkpointer wakes them on reload).
 */
export async function setSyncStandbyNames(
  q: Queryable,
  value: string,
  opts: SetSyncStandbyNamesOptions,
): Promise<void> {
  const where = opts.node ? ` on ${opts.node}` : '';
  try {
    parseSyncStandbyNames(value);
  } catch (err) {
    if (err instanceof SyncStandbyNamesSyntaxError) {
      throw new RoleError(
        'SYNC_NAMES_INVALID',
        `invalid synchronous_standby_names ${JSON.stringify(value)}${where}: ${err.message}`,
        { value, position: err.position, ...(opts.node ? { node: opts.node } : {}) },
      );
    }
    throw err;
  }
  await alterSystemAndReload(q, 'synchronous_standby_names', value);
  const { ok, last } = await waitForSetting(
    q,
    'synchronous_standby_names',
    (v) => v === value,
    opts.timeoutMs,
  );
  if (!ok) {
    throw new RoleError(
      'SYNC_NAMES_NOT_APPLIED',
      `synchronous_standby_names${where} is still ${JSON.stringify(last)} ${opts.timeoutMs} ms after setting ` +
        `${JSON.stringify(value)} and reloading; check postgresql.conf includes and the server log`,
      { value, actual: last, timeoutMs: opts.timeoutMs, ...(opts.node ? { node: opts.node } : {}) },
    );
  }
}
