import { PgError, PgfleetError } from './errors.js';
import { isConnectionSqlState } from './sqlstate.js';

/**
 * What an error thrown by node-pg, Node's socket layer or pgfleet itself says about the
 * session it came from:
 * - `server`: the server answered with an error (a SQLSTATE); the session is still usable
 *   once the transaction is rolled back;
 * - `connection`: the session is gone or never came up (socket errors such as ECONNRESET
 *   or EPIPE, node-pg's "Connection terminated", SQLSTATE class 08 and 57P0x); only a new
 *   connection helps;
 * - `other`: anything else (a bug, an error of our own making).
 */
export type DriverErrorClass =
  | { kind: 'server'; sqlState: string }
  | { kind: 'connection'; sqlState?: string; socketCode?: string }
  | { kind: 'other' };

/** Socket-level error codes meaning "the node did not answer" or "the session broke" (Node's net/dns errors). */
const SOCKET_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EPIPE',
  'ENOENT', // unix socket file missing: the server is not running
  'ERR_SOCKET_CLOSED',
  'ERR_STREAM_DESTROYED',
  'ERR_STREAM_WRITE_AFTER_END',
]);

// node-pg reports a dropped socket, a client it already ended, or its own connect timeout
// with plain Errors that carry no code.
const CONNECTION_MESSAGES = [
  /^Connection terminated/i,
  /^timeout expired$/i,
  /^Client has encountered a connection error/i,
  /^Client was closed and is not queryable/i,
  /^Query read timeout$/i,
];

const SQLSTATE_SHAPE = /^[0-9A-Z]{5}$/;

interface ErrorLike {
  message?: unknown;
  code?: unknown;
  severity?: unknown;
  errors?: unknown;
  sqlState?: unknown;
  details?: { sqlState?: unknown };
}

/**
 * The SQLSTATE of a server error, or undefined. Only an error the server sent counts:
 * node-pg's DatabaseError carries a `severity` next to its `code`; a socket error such as
 * EPIPE has five capital letters in `code` too, but no severity, and is never a SQLSTATE.
 * Typed pgfleet errors keep theirs in `sqlState` (PgError) or `details.sqlState`.
 */
export function sqlStateOf(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  if (err instanceof PgError) return err.sqlState;
  const e = err as ErrorLike;
  if (err instanceof PgfleetError) {
    const s = e.details?.sqlState;
    return typeof s === 'string' ? s : undefined;
  }
  if (typeof e.code === 'string' && SQLSTATE_SHAPE.test(e.code) && typeof e.severity === 'string')
    return e.code;
  return undefined;
}

/** The Node socket error code of `err` (or of the first inner error of an AggregateError), if any. */
export function socketCodeOf(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as ErrorLike;
  if (typeof e.code === 'string' && SOCKET_CODES.has(e.code)) return e.code;
  // Node's happy-eyeballs connect (localhost → ::1 and 127.0.0.1) rejects with an
  // AggregateError whose inner errors carry the codes.
  if (Array.isArray(e.errors)) {
    for (const inner of e.errors) {
      const c = socketCodeOf(inner);
      if (c) return c;
    }
  }
  return undefined;
}

/** The one classifier of driver errors: see {@link DriverErrorClass}. */
export function classifyDriverError(err: unknown): DriverErrorClass {
  const sqlState = sqlStateOf(err);
  if (sqlState !== undefined)
    return isConnectionSqlState(sqlState) ? { kind: 'connection', sqlState } : { kind: 'server', sqlState };
  if (err instanceof PgfleetError)
    return err.code === 'NODE_UNREACHABLE' ? { kind: 'connection' } : { kind: 'other' };
  const socketCode = socketCodeOf(err);
  if (socketCode !== undefined) return { kind: 'connection', socketCode };
  const message =
    typeof (err as ErrorLike | null)?.message === 'string' ? ((err as ErrorLike).message as string) : '';
  if (CONNECTION_MESSAGES.some((re) => re.test(message))) return { kind: 'connection' };
  return { kind: 'other' };
}

/** The session `err` came from is gone: reconnect (see {@link classifyDriverError}). */
export function isConnectionError(err: unknown): boolean {
  return classifyDriverError(err).kind === 'connection';
}
