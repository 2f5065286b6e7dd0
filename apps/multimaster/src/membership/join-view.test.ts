import { describe, expect, it } from 'vitest';
import { formatPgTimestamp } from '../pg-time.js';
import { startingSeen } from './join-view.js';

describe('startingSeen: where the edges into a new node start judging', () => {
  const bSaw = { a: '2026-01-01 00:00:01+00', c: '2026-01-01 00:00:02+00' };
  const view = { floor: '2026-01-01 00:00:00+00', seenByOther: new Map<string, unknown>([['b', bSaw]]) };

  it('gives other → new what the source recorded for other → source, and source → new the newest copied commit per origin', () => {
    const rows = startingSeen(
      'd',
      'a',
      ['b', 'c'],
      view,
      new Map([
        ['pgfleet_b', 5_000_000n],
        ['pgfleet_a', 9n],
      ]),
    );
    expect(rows).toEqual([
      { edge: 'b_d', seen: bSaw },
      // c has no edge_seen row on a (nothing recorded yet) and no copied row: left to the floor.
      { edge: 'a_d', seen: { b: formatPgTimestamp(5_000_000n) } },
    ]);
  });

  it('records an empty view for the source edge when the copy holds nothing from other nodes', () => {
    expect(startingSeen('d', 'a', [], view, new Map())).toEqual([{ edge: 'a_d', seen: {} }]);
  });
});
