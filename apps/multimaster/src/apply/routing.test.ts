import type { Lsn } from '@pgfleet/wal';
import { describe, expect, it } from 'vitest';
import { type Route, routeTransaction, shouldStream } from './routing.js';

const L = (n: number) => BigInt(n) as Lsn;

describe('routeTransaction', () => {
  it.each<[string, Parameters<typeof routeTransaction>[0], Route]>([
    [
      'an ordinary transaction is applied set-based',
      { origin: null, finalLsn: L(10), deadLetterCommitLsn: null, carefulCommitLsn: null },
      'fast',
    ],
    [
      'an echo is skipped, even when it is the one to replay',
      { origin: 'pgfleet_b', finalLsn: L(10), deadLetterCommitLsn: null, carefulCommitLsn: L(10) },
      'echo',
    ],
    [
      'a manual origin is an echo too',
      { origin: 'manual', finalLsn: L(10), deadLetterCommitLsn: null, carefulCommitLsn: null },
      'echo',
    ],
    [
      'the transaction to record as a dead letter',
      { origin: null, finalLsn: L(10), deadLetterCommitLsn: L(10), carefulCommitLsn: L(10) },
      'dead',
    ],
    [
      'the transaction to replay change by change',
      { origin: null, finalLsn: L(10), deadLetterCommitLsn: null, carefulCommitLsn: L(10) },
      'careful',
    ],
    [
      'a later one than the one to replay is fast again',
      { origin: null, finalLsn: L(11), deadLetterCommitLsn: L(10), carefulCommitLsn: L(10) },
      'fast',
    ],
  ])('%s', (_name, facts, route) => {
    expect(routeTransaction(facts)).toBe(route);
  });
});

describe('shouldStream', () => {
  const limits = { rows: 4000, bytes: 1000, groups: 32 };
  it.each<[string, { rows: number; bytes: number; groups: number }, boolean]>([
    ['a small transaction is held whole', { rows: 20, bytes: 500, groups: 2 }, false],
    ['at the limits it is still held', { rows: 4000, bytes: 1000, groups: 32 }, false],
    ['too many rows', { rows: 4001, bytes: 10, groups: 1 }, true],
    ['too many bytes', { rows: 1, bytes: 1001, groups: 1 }, true],
    ['too many groups for one procedure', { rows: 33, bytes: 10, groups: 33 }, true],
  ])('%s', (_name, tx, want) => {
    expect(shouldStream(tx, limits)).toBe(want);
  });
});
