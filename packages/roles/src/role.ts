import { connect, type Queryable, redactConninfo } from '@pgfleet/connection';
import { type Lsn, parseLsn } from '@pgfleet/wal';
import { type DownCause, downReasonFromError } from './down-reason.js';
import { nodeLabel } from './node-label.js';
import { TIMELINE_COLUMNS, timelineFromRow } from './timeline.js';

export type NodeRole = 'primary' | 'standby' | 'down';

export interface RoleInfo {
  role: NodeRole;
  /** One line for humans: why this role (or why down). Never contains a password. */
  reason: string;
  /** Set when role is 'down': a stable token to decide on (refused, timeout, auth_failed...). */
  downCause?: DownCause;
  /** SQLSTATE that made it down, when the server sent one (57P03, 28P01...). */
  sqlState?: string;
  /** Set when role is 'down': the server itself replied (see DownReason.answered). */
  answered?: boolean;
  timeline?: number;
  /**
   * Primary: pg_current_wal_lsn(). Standby: the furthest of received and replayed WAL
   * (what it would have after promotion), null-safe.
   */
  lsn?: Lsn;
  /** default_transaction_read_only is on in the server's configuration (see isFenced). */
  fenced?: boolean;
  /** server_version_num, e.g. 150010. */
  serverVersion?: number;
}

// One round trip (timeline columns: see timeline.ts). CASE keeps pg_current_wal_lsn()/pg_walfile_name() (errors during
// recovery) from running on a standby. GREATEST ignores NULLs (receive LSN is NULL on a
// standby that never streamed).
const ROLE_SQL = `SELECT pg_is_in_recovery() AS in_recovery,
  current_setting('server_version_num')::int AS server_version,
  (SELECT reset_val FROM pg_settings WHERE name = 'default_transaction_read_only') AS read_only,
  CASE WHEN pg_is_in_recovery()
    THEN GREATEST(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())
    ELSE pg_current_wal_lsn() END::text AS lsn,
  ${TIMELINE_COLUMNS}`;

interface RoleRow {
  in_recovery: boolean;
  server_version: number;
  read_only: string;
  lsn: string | null;
  wal_file: string | null;
  standby_tli: number | null;
}

/** The role of the server behind an open session (throws what the query throws). */
export async function detectRoleOn(q: Queryable): Promise<RoleInfo> {
  const { rows } = await q.query(ROLE_SQL);
  const row = rows[0] as RoleRow;
  const info: RoleInfo = {
    role: row.in_recovery ? 'standby' : 'primary',
    reason: row.in_recovery ? 'pg_is_in_recovery() = true' : 'pg_is_in_recovery() = false',
    timeline: timelineFromRow(row),
    fenced: row.read_only === 'on',
    serverVersion: Number(row.server_version),
  };
  if (row.lsn !== null) info.lsn = parseLsn(row.lsn);
  if (info.fenced && info.role === 'primary') info.reason += ', fenced (default_transaction_read_only = on)';
  return info;
}

class DeadlineExceeded extends Error {
  constructor(ms: number) {
    super(`timed out after ${ms} ms`);
  }
}

export interface DetectRoleOptions {
  /** Hard limit for connect + query together, also when the peer is black-holed or paused. */
  timeoutMs: number;
  /** application_name of the probing session. Default: pgfleet-roles. */
  applicationName?: string;
}

/**
 * Connects, asks the server its role, disconnects. Never throws for an unreachable or
 * unusable node: that is role 'down' with `downCause` and `reason`.
 */
export async function detectRole(conninfo: string, opts: DetectRoleOptions): Promise<RoleInfo> {
  const node = nodeLabel(conninfo);
  let client: Awaited<ReturnType<typeof connect>> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let timedOut = false;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      timedOut = true;
      reject(new DeadlineExceeded(opts.timeoutMs));
    }, opts.timeoutMs);
  });
  const attempt = (async () => {
    const c = await connect(conninfo, {
      connectTimeoutMs: opts.timeoutMs,
      statementTimeoutMs: opts.timeoutMs,
      applicationName: opts.applicationName ?? 'pgfleet-roles',
    });
    if (timedOut) {
      c.end().catch(() => {});
      throw new DeadlineExceeded(opts.timeoutMs);
    }
    client = c;
    return detectRoleOn(c);
  })();
  // The loser of the race must not surface as an unhandled rejection.
  attempt.catch(() => {});
  try {
    return await Promise.race([attempt, deadline]);
  } catch (err) {
    const down = downReasonFromError(err);
    const result: RoleInfo = {
      role: 'down',
      reason: redactConninfo(`${node}: ${down.reason}`),
      downCause: down.cause,
      answered: down.answered,
    };
    if (down.sqlState) result.sqlState = down.sqlState;
    return result;
  } finally {
    clearTimeout(timer);
    if (client) {
      const c = client;
      // A paused peer never answers Terminate; destroy the socket instead of waiting.
      if (timedOut) destroyClient(c);
      else c.end().catch(() => {});
    }
  }
}

function destroyClient(c: unknown): void {
  const stream = (c as { connection?: { stream?: { destroy?: () => void } } }).connection?.stream;
  try {
    stream?.destroy?.();
  } catch {
    // already gone
  }
  (c as { end?: () => Promise<void> }).end?.().catch(() => {});
}
