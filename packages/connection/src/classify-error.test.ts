import { describe, expect, it } from 'vitest';
import { classifyDriverError, isConnectionError, sqlStateOf } from './classify-error.js';
import { ConfigError, NodeUnreachableError, PgError } from './errors.js';

/** node-pg's DatabaseError (pg-protocol) is plain data: a message, a severity and a code. */
const dbError = (code: string) =>
  Object.assign(new Error(`server says ${code}`), { severity: 'ERROR', code });
const sockError = (code: string) =>
  Object.assign(new Error(`write ${code}`), { code, errno: -32, syscall: 'write' });

describe('classifyDriverError', () => {
  const cases: Array<[string, unknown, ReturnType<typeof classifyDriverError>]> = [
    ['unique violation', dbError('23505'), { kind: 'server', sqlState: '23505' }],
    ['deadlock', dbError('40P01'), { kind: 'server', sqlState: '40P01' }],
    ['our own SQLSTATE from a plpgsql RAISE', dbError('PF002'), { kind: 'server', sqlState: 'PF002' }],
    ['connection failure (class 08)', dbError('08006'), { kind: 'connection', sqlState: '08006' }],
    ['admin shutdown', dbError('57P01'), { kind: 'connection', sqlState: '57P01' }],
    [
      'statement canceled is a server error, not a lost session',
      dbError('57014'),
      { kind: 'server', sqlState: '57014' },
    ],
    // Five capital letters like a SQLSTATE: only the severity marks a server error.
    [
      'EPIPE is a broken socket, never a SQLSTATE',
      sockError('EPIPE'),
      { kind: 'connection', socketCode: 'EPIPE' },
    ],
    ['ECONNRESET', sockError('ECONNRESET'), { kind: 'connection', socketCode: 'ECONNRESET' }],
    [
      'happy-eyeballs AggregateError',
      new AggregateError([sockError('ECONNREFUSED')], ''),
      { kind: 'connection', socketCode: 'ECONNREFUSED' },
    ],
    ["node-pg's dropped socket", new Error('Connection terminated unexpectedly'), { kind: 'connection' }],
    ["node-pg's ended client", new Error('Client was closed and is not queryable'), { kind: 'connection' }],
    ['PgError keeps its SQLSTATE', new PgError('23514', 'check'), { kind: 'server', sqlState: '23514' }],
    [
      'NodeUnreachableError from a server state',
      new NodeUnreachableError('gone', { sqlState: '57P01' }),
      { kind: 'connection', sqlState: '57P01' },
    ],
    [
      'NodeUnreachableError from a socket',
      new NodeUnreachableError('gone', { reason: 'EPIPE' }),
      { kind: 'connection' },
    ],
    ['a config error', new ConfigError('bad'), { kind: 'other' }],
    ['a plain bug', new TypeError('x is undefined'), { kind: 'other' }],
    ['not an error at all', 'boom', { kind: 'other' }],
  ];
  it.each(cases)('%s', (_name, err, want) => {
    expect(classifyDriverError(err)).toEqual(want);
    expect(isConnectionError(err)).toBe(want.kind === 'connection');
  });

  it('reads a SQLSTATE only from server errors', () => {
    expect(sqlStateOf(dbError('23505'))).toBe('23505');
    expect(sqlStateOf(sockError('EPIPE'))).toBeUndefined();
    expect(sqlStateOf(Object.assign(new Error('x'), { code: '23505' }))).toBeUndefined();
    expect(sqlStateOf(null)).toBeUndefined();
  });
});
