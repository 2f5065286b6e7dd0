import { describe, expect, it } from 'vitest';
import type { NodeConfig } from '../config.js';
import { candidatesOf, pickPrimary } from './primary.js';

describe('pickPrimary', () => {
  const w = (name: string, writable: boolean) => ({ name, writable });
  it.each<[string, Parameters<typeof pickPrimary>[1], Parameters<typeof pickPrimary>[2], string | RegExp]>([
    [
      'the keeper that says primary, and accepts writes',
      [
        { name: 'a1', status: 503 },
        { name: 'a2', status: 200 },
      ],
      [w('a1', true), w('a2', true)],
      'a2',
    ],
    [
      'no keeper answers: the one writable server',
      [
        { name: 'a1', status: null },
        { name: 'a2', status: null },
      ],
      [{ name: 'a1', error: 'refused' }, w('a2', true)],
      'a2',
    ],
    ['no keepers configured: the one writable server', [], [w('a1', false), w('a2', true)], 'a2'],
    [
      'keepers answer, none says primary: a failover is under way',
      [
        { name: 'a1', status: null },
        { name: 'a2', status: 503 },
      ],
      [w('a2', true)],
      /no keeper reports a primary/,
    ],
    [
      'the keeper says primary: taken without a probe (sessions check it with assertWritable)',
      [
        { name: 'a1', status: 503 },
        { name: 'a2', status: 200 },
      ],
      [],
      'a2',
    ],
    [
      'two keepers say primary',
      [
        { name: 'a1', status: 200 },
        { name: 'a2', status: 200 },
      ],
      [w('a1', true), w('a2', true)],
      /both report primary/,
    ],
    [
      'two writable servers and no keeper: never guessed',
      [],
      [w('a1', true), w('a2', true)],
      /refusing to pick one/,
    ],
    [
      'nobody writable',
      [],
      [w('a1', false), { name: 'a2', error: 'timeout' }],
      /no server accepts writes \(a1: read-only; a2: timeout\)/,
    ],
  ])('%s', (_w, keepers, probes, want) => {
    const got = pickPrimary('a', keepers, probes);
    if (typeof want === 'string') expect(got).toEqual({ server: want });
    else {
      expect('error' in got && got.error.code).toBe('NO_PRIMARY');
      expect('error' in got && got.error.message).toMatch(want);
    }
  });
});

describe('candidatesOf', () => {
  const node = (over: Partial<NodeConfig>): NodeConfig => ({
    name: 'a',
    conninfo: 'host=h1 port=5432',
    rank: 0,
    servers: [],
    ...over,
  });
  it('a single server: itself', () => {
    expect(candidatesOf(node({}))).toEqual([{ name: 'a', conninfo: 'host=h1 port=5432', keeperUrl: null }]);
  });
  it('a multi-host conninfo: one single-host conninfo per host, without target_session_attrs', () => {
    expect(
      candidatesOf(
        node({ conninfo: 'host=h1,h2 port=5432,5433 dbname=app target_session_attrs=read-write' }),
      ),
    ).toEqual([
      { name: 'h1:5432', conninfo: 'host=h1 port=5432 dbname=app', keeperUrl: null },
      { name: 'h2:5433', conninfo: 'host=h2 port=5433 dbname=app', keeperUrl: null },
    ]);
  });
  it('listed servers win over the conninfo', () => {
    const servers = [
      { name: 'a1', conninfo: 'host=h1', slot: 'a1', keeperUrl: 'http://h1:8008' },
      { name: 'a2', conninfo: 'host=h2', slot: 'a2', keeperUrl: null },
    ];
    expect(candidatesOf(node({ servers })).map((c) => [c.name, c.keeperUrl])).toEqual([
      ['a1', 'http://h1:8008'],
      ['a2', null],
    ]);
  });
});
