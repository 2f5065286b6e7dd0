import { describe, expect, it } from 'vitest';
import { groupByCommit, resyncAction, windowStart } from './resync-plan.js';

describe('re-sync plan', () => {
  it('groups window rows into transactions by commit timestamp, oldest first', () => {
    const rows = [
      { table: 0, commitTs: 30n, values: ['3'] },
      { table: 1, commitTs: 10n, values: ['1'] },
      { table: 0, commitTs: 30n, values: ['4'] },
      { table: 0, commitTs: 20n, values: ['2'] },
    ];
    expect(groupByCommit(rows).map((t) => [t.commitTs, t.rows.map((r) => r.values[0])])).toEqual([
      [10n, ['1']],
      [20n, ['2']],
      [30n, ['3', '4']],
    ]);
  });

  it.each([
    [null, 0n, null],
    [1_000_000n, 250_000n, 750_000n],
  ])('window start from the newest row the peer holds (%s) minus the margin (%s)', (newest, margin, want) => {
    expect(windowStart(newest, margin)).toBe(want);
  });

  it.each<[string, Parameters<typeof resyncAction>[0], bigint, ReturnType<typeof resyncAction>]>([
    ['the peer lacks the key', null, 100n, 'insert'],
    ['the peer has this very version from the node', { own: true, commitTs: 100n }, 100n, 'skip'],
    ['the peer has a newer version from the node', { own: true, commitTs: 150n }, 100n, 'skip'],
    [
      'the peer has an older version from the node (a missed update)',
      { own: true, commitTs: 50n },
      100n,
      'update',
    ],
    ["the peer has the node's row, timestamp unknown", { own: true, commitTs: null }, 100n, 'update'],
    ['another node changed the row since (policy decides)', { own: false, commitTs: 150n }, 100n, 'insert'],
    ["another node's older row (policy decides)", { own: false, commitTs: 50n }, 100n, 'insert'],
  ])('%s → %s', (_w, peer, ts, want) => {
    expect(resyncAction(peer, ts)).toBe(want);
  });
});
