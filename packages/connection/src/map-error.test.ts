import { describe, expect, it } from 'vitest';
import { ConfigError, NodeUnreachableError, PgError, PgfleetError } from './errors.js';
import { toPgfleetError } from './map-error.js';
import { SqlState } from './sqlstate.js';

/** Shape of node-pg's DatabaseError (pg-protocol), built by hand: it is plain data. */
function dbError(code: string, message: string, extra: Record<string, string> = {}): Error {
  return Object.assign(new Error(message), { severity: 'ERROR', code, ...extra });
}

function sockError(code: string, message = `connect ${code} 127.0.0.1:1`): Error {
  return Object.assign(new Error(message), { code, errno: -1, syscall: 'connect' });
}

const ctx = { node: '127.0.0.1:5432', action: 'connect' };

describe('toPgfleetError', () => {
  const cases: Array<[string, unknown, new (...a: never[]) => PgfleetError, string, string | undefined]> = [
    ['unique violation', dbError('23505', 'duplicate key'), PgError, 'PG_ERROR', SqlState.UNIQUE_VIOLATION],
    [
      'read-only transaction',
      dbError('25006', 'read-only'),
      PgError,
      'PG_ERROR',
      SqlState.READ_ONLY_SQL_TRANSACTION,
    ],
    ['bad password', dbError('28P01', 'password authentication failed'), PgError, 'PG_ERROR', '28P01'],
    [
      'statement timeout',
      dbError('57014', 'canceling statement'),
      PgError,
      'PG_ERROR',
      SqlState.QUERY_CANCELED,
    ],
    [
      'admin shutdown',
      dbError('57P01', 'terminating connection'),
      NodeUnreachableError,
      'NODE_UNREACHABLE',
      '57P01',
    ],
    [
      'starting up',
      dbError('57P03', 'the database system is starting up'),
      NodeUnreachableError,
      'NODE_UNREACHABLE',
      '57P03',
    ],
    ['class 08', dbError('08006', 'connection failure'), NodeUnreachableError, 'NODE_UNREACHABLE', '08006'],
    ['refused', sockError('ECONNREFUSED'), NodeUnreachableError, 'NODE_UNREACHABLE', undefined],
    ['reset', sockError('ECONNRESET'), NodeUnreachableError, 'NODE_UNREACHABLE', undefined],
    ['timed out', sockError('ETIMEDOUT'), NodeUnreachableError, 'NODE_UNREACHABLE', undefined],
    ['host unreachable', sockError('EHOSTUNREACH'), NodeUnreachableError, 'NODE_UNREACHABLE', undefined],
    [
      'DNS',
      sockError('ENOTFOUND', 'getaddrinfo ENOTFOUND nohost'),
      NodeUnreachableError,
      'NODE_UNREACHABLE',
      undefined,
    ],
    // EPIPE is five upper-case letters like a SQLSTATE; only severity marks a server error.
    [
      'EPIPE is not a SQLSTATE',
      sockError('EPIPE', 'write EPIPE'),
      NodeUnreachableError,
      'NODE_UNREACHABLE',
      undefined,
    ],
    [
      'happy-eyeballs AggregateError',
      Object.assign(new AggregateError([sockError('ECONNREFUSED'), sockError('ECONNREFUSED')], ''), {
        code: 'ECONNREFUSED',
      }),
      NodeUnreachableError,
      'NODE_UNREACHABLE',
      undefined,
    ],
    [
      'AggregateError without code',
      new AggregateError([sockError('ENETUNREACH')], ''),
      NodeUnreachableError,
      'NODE_UNREACHABLE',
      undefined,
    ],
    [
      'node-pg terminated',
      new Error('Connection terminated unexpectedly'),
      NodeUnreachableError,
      'NODE_UNREACHABLE',
      undefined,
    ],
    [
      'node-pg connect timeout',
      new Error('timeout expired'),
      NodeUnreachableError,
      'NODE_UNREACHABLE',
      undefined,
    ],
    [
      'TLS refused by the server',
      new Error('The server does not support SSL connections'),
      ConfigError,
      'CONFIG_INVALID',
      undefined,
    ],
    [
      'no password for a SCRAM server (node-pg SASL wording)',
      new Error('SASL: SCRAM-SERVER-FIRST-MESSAGE: client password must be a string'),
      ConfigError,
      'CONFIG_INVALID',
      undefined,
    ],
    ['anything else', new TypeError('boom'), PgfleetError, 'UNEXPECTED', undefined],
    ['a string', 'boom', PgfleetError, 'UNEXPECTED', undefined],
  ];
  it.each(cases)('%s', (_name, input, cls, code, sqlState) => {
    const e = toPgfleetError(input, ctx);
    expect(e).toBeInstanceOf(cls);
    expect(e.code).toBe(code);
    expect(e.details.sqlState).toBe(sqlState);
    expect(e.message).toContain('127.0.0.1:5432');
    expect(e.details.node).toBe('127.0.0.1:5432');
  });

  it('names the missing password, not SASL internals', () => {
    const e = toPgfleetError(
      new Error('SASL: SCRAM-SERVER-FIRST-MESSAGE: client password must be a string'),
      ctx,
    );
    expect(e.message).toMatch(/the server asks for a password and none is given/);
    expect(e.message).not.toMatch(/SASL|SCRAM/);
    expect(e.details).toMatchObject({ key: 'password', reason: 'password_missing' });
  });

  it('keeps sqlState on PgError and copies server fields', () => {
    const e = toPgfleetError(
      dbError('23505', 'duplicate key value violates unique constraint "t_pkey"', {
        constraint: 't_pkey',
        table: 't',
        detail: 'Key (id)=(1) already exists.',
      }),
      { node: 'a', action: 'insert' },
    ) as PgError;
    expect(e.sqlState).toBe('23505');
    expect(e.details).toMatchObject({ constraint: 't_pkey', table: 't', node: 'a', action: 'insert' });
    expect(e.message).toBe(
      'insert on a failed: duplicate key value violates unique constraint "t_pkey" (SQLSTATE 23505)',
    );
  });

  it('returns typed errors unchanged', () => {
    const e = new ConfigError('bad', { key: 'x' });
    expect(toPgfleetError(e, ctx)).toBe(e);
  });

  it('redacts passwords found in messages and details', () => {
    const e = toPgfleetError(
      dbError('08001', 'could not connect to server: host=h password=hunter2', {
        detail: 'postgres://u:hunter2@h',
      }),
      ctx,
    );
    expect(e.message).not.toContain('hunter2');
    expect(JSON.stringify(e.details)).not.toContain('hunter2');
  });

  it('keeps the original error as cause', () => {
    const orig = sockError('ECONNREFUSED');
    expect(toPgfleetError(orig).cause).toBe(orig);
  });
});
