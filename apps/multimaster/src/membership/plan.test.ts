import { parseLsn } from '@pgfleet/wal';
import { describe, expect, it } from 'vitest';
import type { TableSpec } from '../config.js';
import {
  type CatchUpFacts,
  chooseCopySource,
  copySourceProblem,
  removalPlan,
  sourceCaughtUp,
} from './plan.js';

const table = (over: Partial<TableSpec> = {}): TableSpec => ({
  schema: 'app',
  table: 't',
  conflict: 'last_update_wins',
  targets: {},
  ...over,
});

describe('copySourceProblem', () => {
  it.each<[string, TableSpec, string | null]>([
    ['no filters at all', table(), null],
    ['the same filter into every node', table({ rowFilter: "region = 'eu'" }), null],
    ['a filter only into the new node', table({ targets: { c: { rowFilter: "region = 'eu'" } } }), null],
    [
      'a filter only into the source',
      table({ targets: { a: { rowFilter: "region = 'eu'" } } }),
      'a lacks rows',
    ],
    [
      'different filters into source and new node',
      table({ targets: { a: { rowFilter: "region = 'eu'" }, c: { rowFilter: "region = 'us'" } } }),
      'a lacks rows',
    ],
    [
      'a column list into the source only',
      table({ targets: { a: { columns: ['id'] } } }),
      'filtered differently',
    ],
  ])('%s', (_name, spec, want) => {
    const got = copySourceProblem([spec], 'a', 'c');
    if (want === null) expect(got).toBeNull();
    else expect(got).toContain(want);
  });
});

describe('chooseCopySource', () => {
  const filtered = [table({ targets: { a: { rowFilter: 'id > 0' } } })];
  it('takes the first reachable node whose incoming filters allow a copy', () => {
    expect(
      chooseCopySource(
        filtered,
        [
          { node: 'a', reachable: true },
          { node: 'b', reachable: false },
          { node: 'd', reachable: true },
        ],
        'c',
      ),
    ).toEqual({
      source: 'd',
      rejected: [
        { node: 'a', reason: expect.stringContaining('filtered differently') },
        { node: 'b', reason: 'unreachable' },
      ],
    });
  });

  it('uses only the requested node, and says why it cannot', () => {
    expect(
      chooseCopySource(
        [table()],
        [
          { node: 'a', reachable: true },
          { node: 'b', reachable: false },
        ],
        'c',
        'b',
      ),
    ).toEqual({
      source: null,
      rejected: [{ node: 'b', reason: 'unreachable' }],
    });
    expect(chooseCopySource([table()], [{ node: 'a', reachable: true }], 'c', 'zz').rejected).toEqual([
      { node: 'zz', reason: 'not an existing node of the mesh' },
    ]);
  });
});

describe('sourceCaughtUp', () => {
  const L = (s: string) => parseLsn(s);
  const base: CatchUpFacts = {
    slotStart: L('0/5000'),
    originProgress: null,
    confirmedFlush: null,
    pendingOwnTransactions: null,
  };
  it.each<[string, Partial<CatchUpFacts>, boolean, string?]>([
    ['nothing known yet', {}, false],
    ['origin progress behind the slot', { originProgress: L('0/4FFF') }, false],
    ['origin progress at the slot start', { originProgress: L('0/5000') }, true, 'origin'],
    ['slot to the source confirmed past the start', { confirmedFlush: L('0/6000') }, true, 'slot'],
    ['confirmed behind, origin behind', { confirmedFlush: L('0/10'), originProgress: L('0/10') }, false],
    ['inactive slot with only echoes pending', { pendingOwnTransactions: 0 }, true, 'peek'],
    ['inactive slot with own work pending', { pendingOwnTransactions: 3 }, false],
  ])('%s', (_name, over, ok, via) => {
    const got = sourceCaughtUp({ ...base, ...over });
    expect(got.ok).toBe(ok);
    if (via) expect(got).toEqual({ ok: true, via });
  });
});

describe('removalPlan', () => {
  it('names every edge touching the removed node, on both ends', () => {
    expect(removalPlan(['a', 'b', 'c'], 'b')).toEqual([
      {
        node: 'a',
        slots: ['pgfleet_a_b'],
        publications: ['pgfleet_a_b'],
        origins: ['pgfleet_b', 'pgfleet_b:replay'],
      },
      {
        node: 'c',
        slots: ['pgfleet_c_b'],
        publications: ['pgfleet_c_b'],
        origins: ['pgfleet_b', 'pgfleet_b:replay'],
      },
      {
        node: 'b',
        slots: ['pgfleet_b_a', 'pgfleet_b_c'],
        publications: ['pgfleet_b_a', 'pgfleet_b_c'],
        origins: ['pgfleet_a', 'pgfleet_a:replay', 'pgfleet_c', 'pgfleet_c:replay'],
      },
    ]);
  });
});
