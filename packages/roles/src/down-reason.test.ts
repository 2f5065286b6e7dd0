import { NodeUnreachableError, toPgfleetError } from '@pgfleet/connection';
import { describe, expect, it } from 'vitest';
import { type DownCause, downReasonFromError } from './down-reason.js';

/** What node-pg throws for a server ErrorResponse. */
function serverError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code, severity: 'FATAL' });
}
function socketError(code: string): Error {
  return Object.assign(new Error(`connect ${code} 127.0.0.1:5432`), { code, errno: -1, syscall: 'connect' });
}

describe('downReasonFromError', () => {
  it.each<[string, unknown, DownCause, string | undefined]>([
    ['refused', socketError('ECONNREFUSED'), 'refused', undefined],
    [
      'refused inside AggregateError',
      new AggregateError([socketError('ECONNREFUSED')], ''),
      'refused',
      undefined,
    ],
    ['socket timeout', socketError('ETIMEDOUT'), 'timeout', undefined],
    ['reset', socketError('ECONNRESET'), 'reset', undefined],
    ['EPIPE is a socket error, not a SQLSTATE', socketError('EPIPE'), 'reset', undefined],
    ['host unreachable', socketError('EHOSTUNREACH'), 'unreachable', undefined],
    ['dns', socketError('ENOTFOUND'), 'host_not_found', undefined],
    ['node-pg connect timeout', new Error('timeout expired'), 'timeout', undefined],
    ['our deadline', new Error('timed out after 500 ms'), 'timeout', undefined],
    ['dropped', new Error('Connection terminated unexpectedly'), 'reset', undefined],
    ['starting up', serverError('57P03', 'the database system is starting up'), 'starting_up', '57P03'],
    ['shutting down', serverError('57P03', 'the database system is shutting down'), 'shutting_down', '57P03'],
    [
      'crash recovery',
      serverError('57P03', 'the database system is in recovery mode'),
      'crash_recovery',
      '57P03',
    ],
    [
      'standby not consistent',
      serverError('57P03', 'the database system is not yet accepting connections'),
      'not_consistent',
      '57P03',
    ],
    [
      'hot_standby off',
      serverError('57P03', 'the database system is not accepting connections'),
      'hot_standby_off',
      '57P03',
    ],
    [
      'admin shutdown',
      serverError('57P01', 'terminating connection due to administrator command'),
      'shutting_down',
      '57P01',
    ],
    [
      'crash shutdown',
      serverError('57P02', 'terminating connection because of crash of another server process'),
      'crash_recovery',
      '57P02',
    ],
    [
      'bad password',
      serverError('28P01', 'password authentication failed for user "x"'),
      'auth_failed',
      '28P01',
    ],
    ['no pg_hba entry', serverError('28000', 'no pg_hba.conf entry for host'), 'auth_failed', '28000'],
    ['too many', serverError('53300', 'sorry, too many clients already'), 'too_many_connections', '53300'],
    [
      'statement timeout',
      serverError('57014', 'canceling statement due to statement timeout'),
      'timeout',
      '57014',
    ],
    [
      'other server error',
      serverError('42501', 'permission denied for function pg_is_in_recovery'),
      'error',
      '42501',
    ],
    ['anything else', new Error('boom'), 'error', undefined],
    ['not an Error', 'weird', 'error', undefined],
  ])('%s', (_label, err, cause, sqlState) => {
    const down = downReasonFromError(err);
    expect(down.cause).toBe(cause);
    expect(down.sqlState).toBe(sqlState);
    expect(down.reason.length).toBeGreaterThan(0);
  });

  it.each<[unknown, DownCause]>([
    [socketError('ECONNREFUSED'), 'refused'],
    [serverError('57P03', 'the database system is starting up'), 'starting_up'],
    [serverError('28P01', 'password authentication failed for user "x"'), 'auth_failed'],
    [new Error('timeout expired'), 'timeout'],
  ])('reads the same cause through @pgfleet/connection error mapping (%s)', (err, cause) => {
    expect(downReasonFromError(toPgfleetError(err, { node: 'b', action: 'connect' })).cause).toBe(cause);
  });

  it('reads a SQLSTATE kept only in details', () => {
    const err = new NodeUnreachableError('connect on a failed: the database system is shutting down', {
      sqlState: '57P03',
    });
    expect(downReasonFromError(err)).toMatchObject({ cause: 'shutting_down', sqlState: '57P03' });
  });

  it("puts the server's own words and the SQLSTATE in the reason for server errors", () => {
    expect(downReasonFromError(serverError('57P03', 'the database system is starting up')).reason).toBe(
      'the database system is starting up (57P03)',
    );
    const wrapped = toPgfleetError(serverError('28P01', 'password authentication failed for user "x"'), {
      node: 'b',
      action: 'connect',
    });
    expect(downReasonFromError(wrapped)).toMatchObject({
      reason: 'password authentication failed for user "x" (28P01)',
      serverMessage: 'password authentication failed for user "x"',
    });
  });

  it.each<[string, unknown, boolean]>([
    [
      'a wrong password is an answer',
      serverError('28P01', 'password authentication failed for user "x"'),
      true,
    ],
    ['too many connections is an answer', serverError('53300', 'sorry, too many clients already'), true],
    ['starting up is an answer', serverError('57P03', 'the database system is starting up'), true],
    ['any other server error is an answer', serverError('3D000', 'database "nope" does not exist'), true],
    ['refused is silence', socketError('ECONNREFUSED'), false],
    ['a timeout is silence', new Error('timeout expired'), false],
    [
      'our statement timeout firing is silence',
      serverError('57014', 'canceling statement due to statement timeout'),
      false,
    ],
    ['a reset is silence', new Error('Connection terminated unexpectedly'), false],
    ['a non-server error is silence', new Error('boom'), false],
  ])('%s', (_label, err, answered) => {
    expect(downReasonFromError(err).answered).toBe(answered);
    expect(downReasonFromError(toPgfleetError(err, { node: 'b', action: 'probe' })).answered).toBe(answered);
  });
});
