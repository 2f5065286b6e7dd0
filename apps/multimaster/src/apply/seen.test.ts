import { describe, expect, it } from 'vitest';
import { type OriginInfo, SeenTracker, versionSeen } from './seen.js';
import { TIMESTAMP_INFINITY } from './wire-arrays.js';

const nodes = new Set(['a', 'b', 'c']);
// On target c: origin 1 is a's edge, 2 b's edge (the source), 3 b's replay origin, 4 a manual one.
const origins = new Map<number, OriginInfo>([
  [0, { name: 'local:c', node: 'c' }],
  [1, { name: 'pgfleet_a', node: 'a' }],
  [2, { name: 'pgfleet_b', node: 'b' }],
  [3, { name: 'pgfleet_b:replay', node: 'b' }],
  [4, { name: 'manual', node: null }],
]);

describe('SeenTracker', () => {
  it('starts every node at the join floor, or at what was recorded', () => {
    const t = new SeenTracker(100n, nodes, new Map([['a', 500n]]));
    expect(['a', 'b', 'c'].map((n) => t.get(n))).toEqual([500n, 100n, 100n]);
    expect(t.version).toBe(0);
  });

  it('moves a node forward on an echo of its transactions, never back, and ignores foreign origins', () => {
    const t = new SeenTracker(100n, nodes, new Map());
    t.echo('pgfleet_a', 300n);
    expect(t.get('a')).toBe(300n);
    expect(t.version).toBe(1);
    t.echo('pgfleet_a', 200n); // an older commit of a: nothing new was seen
    expect(t.get('a')).toBe(300n);
    expect(t.version).toBe(1);
    t.echo('pgfleet_c:replay', 400n); // a replay of c's changes counts as c's
    expect(t.get('c')).toBe(400n);
    t.echo('manual', 900n);
    t.echo('pgfleet_zz', 900n); // not a mesh node
    expect(t.version).toBe(2);
  });

  it('builds the vector by origin id: own origins infinite, unknown ones null', () => {
    const t = new SeenTracker(
      100n,
      nodes,
      new Map([
        ['a', 300n],
        ['c', 250n],
      ]),
    );
    expect(t.vector(origins, 'c', 'b')).toEqual([250n, 300n, TIMESTAMP_INFINITY, TIMESTAMP_INFINITY, null]);
  });

  it('records times as timestamptz text by node', () => {
    const t = new SeenTracker(0n, new Set(['b', 'a']), new Map([['a', 1n]]));
    expect(JSON.parse(t.toJson())).toEqual({
      a: '2000-01-01 00:00:00.000001+00',
      b: '2000-01-01 00:00:00.000000+00',
    });
  });

  it('records the newest times after each echo, key order by node name', () => {
    const t = new SeenTracker(0n, new Set(['b', 'a']), new Map());
    const first = t.toJson();
    expect(t.toJson()).toBe(first);
    t.echo('pgfleet_b', 2_000_000n);
    expect(t.toJson()).toBe('{"a":"2000-01-01 00:00:00.000000+00","b":"2000-01-01 00:00:02.000000+00"}');
    t.echo('pgfleet_a', 3_000_000n);
    t.echo('pgfleet_b', 1_000_000n); // older than what b had: no move
    expect(JSON.parse(t.toJson())).toEqual({
      a: '2000-01-01 00:00:03.000000+00',
      b: '2000-01-01 00:00:02.000000+00',
    });
  });
});

describe('versionSeen (the SQL seenCondition, for the change-by-change path)', () => {
  const vector = [250n, 300n, TIMESTAMP_INFINITY, TIMESTAMP_INFINITY, null];
  it.each<[string, bigint | null, number, boolean]>([
    ['frozen or unknown commit time: written before the mesh', null, 1, true],
    ['older than the join floor', 90n, 4, true],
    ['from a, no later than what b had applied from a', 300n, 1, true],
    ['from a, later than that: a race', 301n, 1, false],
    ["the source's own row", 10_000n, 2, true],
    ["the source's row written by a replay", 10_000n, 3, true],
    ["the target's own write that b had received", 250n, 0, true],
    ["the target's own later write", 251n, 0, false],
    ['a manual origin after the floor', 101n, 4, false],
    ['an origin id beyond the vector', 101n, 9, false],
  ])('%s', (_name, ts, id, seen) => {
    expect(versionSeen(ts, id, 100n, vector)).toBe(seen);
  });
});
