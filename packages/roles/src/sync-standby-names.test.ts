import { describe, expect, it } from 'vitest';
import {
  commitsNeedStandby,
  formatSyncStandbyNames,
  parseSyncStandbyNames,
  SyncStandbyNamesSyntaxError,
  type SyncStandbySpec,
  standbyIsSync,
  syncPriority,
} from './sync-standby-names.js';

const first = (num: number, ...names: string[]): SyncStandbySpec => ({ method: 'first', num, names });
const any = (num: number, ...names: string[]): SyncStandbySpec => ({ method: 'any', num, names });
const none: SyncStandbySpec = { method: 'none', num: 0, names: [] };

describe('parseSyncStandbyNames', () => {
  it.each<[string, SyncStandbySpec]>([
    ['', none],
    ['a', first(1, 'a')],
    ['a, b', first(1, 'a', 'b')],
    ['a,b,c', first(1, 'a', 'b', 'c')],
    ['  a ,\tb\n', first(1, 'a', 'b')],
    ['FIRST 2 (a, b)', first(2, 'a', 'b')],
    ['first 1(a)', first(1, 'a')],
    ['FiRsT 3 (a,b,c)', first(3, 'a', 'b', 'c')],
    ['ANY 1 (a,"b c")', any(1, 'a', 'b c')],
    ['any 2 (a, b, c)', any(2, 'a', 'b', 'c')],
    ['2 (a,b)', first(2, 'a', 'b')],
    ['10(a)', first(10, 'a')],
    ['*', first(1, '*')],
    ['FIRST 1 (a, *)', first(1, 'a', '*')],
    ['ANY 1 (*)', any(1, '*')],
    // unquoted names keep their case; the server compares case-insensitively later
    ['Node_B', first(1, 'Node_B')],
    ['"Keeper-B"', first(1, 'Keeper-B')],
    ['"a""b"', first(1, 'a"b')],
    ['"any"', first(1, 'any')],
    ['"FIRST", b', first(1, 'FIRST', 'b')],
    // a word that only starts with a keyword is a name (flex takes the longest match)
    ['anyone, firstly', first(1, 'anyone', 'firstly')],
    ['s$1, _x', first(1, 's$1', '_x')],
    ['nœud', first(1, 'nœud')],
    // a bare number is a standby name, not a count
    ['2', first(1, '2')],
    ['1, 2', first(1, '1', '2')],
    ['ANY 1 (1, 2)', any(1, '1', '2')],
    ['""', first(1, '')],
  ])('parses %j', (input, expected) => {
    expect(parseSyncStandbyNames(input)).toEqual(expected);
  });

  it.each([
    ['   ', 'expected a standby name'],
    ['a b', 'expected end of input'],
    ['a,', 'expected a standby name'],
    [',a', 'expected a standby name'],
    ['FIRST (a)', 'expected the number of synchronous standbys'],
    ['ANY a', 'expected the number of synchronous standbys'],
    ['ANY 1 a', 'expected "("'],
    ['ANY 1 (a', 'expected ")"'],
    ['ANY 1 ()', 'expected a standby name'],
    ['FIRST 0 (a)', 'must be greater than zero'],
    ['0 (a)', 'must be greater than zero'],
    ['any', 'expected the number'],
    ['"a', 'unterminated quoted identifier'],
    ['keeper-b', 'unexpected character "-"'],
    ['a.b', 'unexpected character "."'],
    ["'a'", 'unexpected character'],
    ['1a', 'expected end of input'],
    ['ANY 1 (a) b', 'expected end of input'],
    ['ANY 1 (a) (b)', 'expected end of input'],
  ])('rejects %j (%s)', (input, message) => {
    expect(() => parseSyncStandbyNames(input)).toThrow(SyncStandbyNamesSyntaxError);
    expect(() => parseSyncStandbyNames(input)).toThrow(message);
  });

  it('reports where the problem is', () => {
    try {
      parseSyncStandbyNames('FIRST 1 (a, keeper-b)');
      expect.unreachable();
    } catch (err) {
      expect((err as SyncStandbyNamesSyntaxError).position).toBe(18);
    }
  });
});

describe('formatSyncStandbyNames', () => {
  it.each<[SyncStandbySpec, string]>([
    [none, ''],
    [first(1, 'a'), 'FIRST 1 (a)'],
    [first(2, 'a', 'b'), 'FIRST 2 (a, b)'],
    [any(1, 'a', 'b c'), 'ANY 1 (a, "b c")'],
    [any(1, '*'), 'ANY 1 (*)'],
    [first(1, 'keeper-b'), 'FIRST 1 ("keeper-b")'],
    [first(1, 'any', 'First', 'anyone'), 'FIRST 1 ("any", "First", anyone)'],
    [first(1, 'a"b'), 'FIRST 1 ("a""b")'],
    [first(1, 'Mixed_Case'), 'FIRST 1 (Mixed_Case)'],
    [first(1, '2'), 'FIRST 1 (2)'],
    [first(1, ''), 'FIRST 1 ("")'],
  ])('formats %j as %j', (spec, expected) => {
    expect(formatSyncStandbyNames(spec)).toBe(expected);
  });

  it.each<SyncStandbySpec>([
    first(1, 'a'),
    any(3, 'a', 'b c', 'any', 'x-y', '*', 'a"b', '12', 'nœud'),
    first(2, 'FIRST', 'ANY', '1a'),
    none,
  ])('round-trips %j through parse', (spec) => {
    expect(parseSyncStandbyNames(formatSyncStandbyNames(spec))).toEqual(spec);
  });

  it.each<SyncStandbySpec>([first(1), any(0, 'a'), first(1.5, 'a')])('refuses to format %j', (spec) => {
    expect(() => formatSyncStandbyNames(spec)).toThrow(TypeError);
  });
});

describe('syncPriority (what pg_stat_replication.sync_priority shows)', () => {
  it.each<[string, string, number]>([
    ['', 'b', 0],
    ['a, b', 'a', 1],
    ['a, b', 'b', 2],
    ['a, b', 'c', 0],
    ['FIRST 1 (a, *)', 'zzz', 2],
    ['FIRST 1 (*, a)', 'a', 1],
    ['ANY 1 (a, b)', 'b', 1],
    ['ANY 2 (*)', 'x', 1],
    // names compare case-insensitively, quoted or not (pg_strcasecmp in syncrep.c)
    ['"Keeper-B"', 'keeper-b', 1],
    ['NODE_B', 'node_b', 1],
    ['a, a', 'a', 1],
  ])('%j gives %j priority %i', (value, app, expected) => {
    expect(syncPriority(parseSyncStandbyNames(value), app)).toBe(expected);
  });
});

describe('standbyIsSync', () => {
  it.each<[string, string, string[], boolean]>([
    // nothing configured: no standby counts
    ['', 'b', [], false],
    // listed alone
    ['b', 'b', [], true],
    ['B', 'b', [], true],
    ['"b"', 'B', [], true],
    ['c', 'b', [], false],
    ['*', 'anything', [], true],
    // priority: the first num connected by priority are sync, the rest potential
    ['FIRST 1 (a, b)', 'b', [], true],
    ['FIRST 1 (a, b)', 'b', ['a'], false],
    ['FIRST 1 (a, b)', 'a', ['b'], true],
    ['FIRST 2 (a, b, c)', 'b', ['a', 'c'], true],
    ['FIRST 2 (a, b, c)', 'c', ['a', 'b'], false],
    ['FIRST 2 (a, b, c)', 'c', ['a', 'x'], true],
    ['2 (a, b)', 'b', ['a'], true],
    // unlisted others never get ahead
    ['a, b', 'b', ['x', 'y'], true],
    // ties (same priority through *) are broken by walsender order: not certain
    ['FIRST 1 (*)', 'b', ['c'], false],
    ['FIRST 2 (*)', 'b', ['c'], true],
    // quorum: every listed standby takes part, whoever else is connected
    ['ANY 1 (a, b)', 'b', ['a'], true],
    ['ANY 1 (b)', 'b', [], true],
    ['ANY 2 (a, *)', 'z', ['a', 'b'], true],
    ['ANY 1 (a)', 'b', [], false],
  ])('%j for %j with others %j → %j', (value, app, connected, expected) => {
    expect(standbyIsSync(parseSyncStandbyNames(value), app, { connected })).toBe(expected);
  });
});

describe('commitsNeedStandby', () => {
  it.each<[string, string, string, boolean]>([
    // a pair: the primary's own name never confirms, so b alone confirms every commit
    ['ANY 1 (a, b)', 'b', 'a', true],
    ['FIRST 1 (a, b)', 'b', 'a', true],
    ['b', 'b', 'a', true],
    ['"B"', 'b', 'a', true],
    ['ANY 2 (a, b)', 'b', 'a', true],
    // someone else could confirm
    ['ANY 1 (a, b, c)', 'b', 'a', false],
    ['FIRST 1 (c, b)', 'b', 'a', false],
    ['*', 'b', 'a', false],
    ['ANY 1 (b, *)', 'b', 'a', false],
    // not listed, or nothing configured
    ['c', 'b', 'a', false],
    ['a', 'b', 'a', false],
    ['', 'b', 'a', false],
  ])('%j, standby %j, primary %j → %j', (value, standby, primary, expected) => {
    expect(commitsNeedStandby(parseSyncStandbyNames(value), standby, primary)).toBe(expected);
  });
});
