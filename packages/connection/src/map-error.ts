import { classifyDriverError } from './classify-error.js';
import { ConfigError, NodeUnreachableError, PgError, PgfleetError } from './errors.js';
import { redactConninfo } from './redact.js';

export interface ErrorContext {
  /** Node name or `host:port`, named in the message. */
  node?: string;
  /** What we were doing, e.g. `connect`, `probe`, `promote`. */
  action?: string;
}

/** node-pg's words for "the server asked for a password and the client had none". */
const MISSING_PASSWORD = /client password must be a string|password must be a string/i;

interface ErrorLike {
  message?: unknown;
  code?: unknown;
  errors?: unknown;
  detail?: unknown;
  hint?: unknown;
  severity?: unknown;
  schema?: unknown;
  table?: unknown;
  column?: unknown;
  constraint?: unknown;
  routine?: unknown;
}

function messageOf(err: unknown): string {
  if (err && typeof err === 'object' && typeof (err as ErrorLike).message === 'string') {
    const m = (err as ErrorLike).message as string;
    if (m !== '') return m;
    if (Array.isArray((err as ErrorLike).errors)) {
      return ((err as ErrorLike).errors as unknown[]).map(messageOf).join('; ');
    }
  }
  return String(err);
}

function prefix(ctx: ErrorContext): string {
  const action = ctx.action ?? 'query';
  return ctx.node ? `${action} on ${ctx.node}` : action;
}

function pgFields(err: ErrorLike): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of [
    'severity',
    'detail',
    'hint',
    'schema',
    'table',
    'column',
    'constraint',
    'routine',
  ] as const) {
    const v = err[k];
    if (typeof v === 'string' && v !== '') out[k] = redactConninfo(v);
  }
  return out;
}

/**
 * Maps anything thrown by node-pg, node's net module or our own code to a PgfleetError:
 * - an error already typed is returned as is;
 * - a server error (`.code` is a SQLSTATE) becomes {@link PgError}, except class 08 and
 *   57P0x (the session is gone or the server is shutting down/starting), which become
 *   {@link NodeUnreachableError} with `details.sqlState`;
 * - socket errors (refused, reset, timed out, unreachable, DNS) and node-pg's
 *   "Connection terminated" become {@link NodeUnreachableError};
 * - anything else becomes a PgfleetError with code `UNEXPECTED`.
 * Messages name the node and action and are redacted, so they never carry a password.
 */
export function toPgfleetError(err: unknown, ctx: ErrorContext = {}): PgfleetError {
  if (err instanceof PgfleetError) return err;
  const e: ErrorLike = err && typeof err === 'object' ? (err as ErrorLike) : {};
  const raw = redactConninfo(messageOf(err));
  const where = prefix(ctx);
  const base: Record<string, unknown> = {};
  if (ctx.node) base.node = ctx.node;
  if (ctx.action) base.action = ctx.action;
  const options = { cause: err };

  const c = classifyDriverError(err);
  if (c.kind !== 'other' && c.sqlState !== undefined) {
    const msg = `${where} failed: ${raw} (SQLSTATE ${c.sqlState})`;
    if (c.kind === 'connection') {
      return new NodeUnreachableError(
        msg,
        { ...base, ...pgFields(e), sqlState: c.sqlState, reason: 'server' },
        options,
      );
    }
    return new PgError(c.sqlState, msg, { ...base, ...pgFields(e) }, options);
  }
  if (c.kind === 'connection' && c.socketCode !== undefined) {
    return new NodeUnreachableError(
      `${where} failed: ${raw} (${c.socketCode})`,
      { ...base, reason: c.socketCode },
      options,
    );
  }
  if (MISSING_PASSWORD.test(raw)) {
    // node-pg says "SASL: SCRAM-SERVER-FIRST-MESSAGE: client password must be a string": an
    // internal detail. What the user must change is the conninfo (or ~/.pgpass).
    return new ConfigError(
      `${where} failed: the server asks for a password and none is given ` +
        '(no password in the conninfo, no PGPASSWORD, no matching ~/.pgpass entry)',
      { ...base, key: 'password', reason: 'password_missing' },
      options,
    );
  }
  if (/does not support SSL/i.test(raw)) {
    // Permanent: retrying will not make the server grow TLS; the conninfo must change.
    return new ConfigError(
      `${where} failed: ${raw}; use sslmode=prefer or disable, or enable ssl on the server`,
      {
        ...base,
        key: 'sslmode',
      },
      options,
    );
  }
  if (c.kind === 'connection') {
    return new NodeUnreachableError(
      `${where} failed: ${raw}`,
      { ...base, reason: 'connection-lost' },
      options,
    );
  }
  return new PgfleetError('UNEXPECTED', `${where} failed: ${raw}`, base, options);
}
