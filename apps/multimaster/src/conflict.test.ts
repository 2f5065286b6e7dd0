import { describe, expect, it } from 'vitest';
import type { ConflictPolicy } from './config.js';
import { type ConflictKind, resolveConflict } from './conflict.js';

const L = (commitTs: bigint | null, originRank: number) => ({ commitTs, originRank });
const R = (commitTs: bigint, sourceRank: number) => ({ commitTs, sourceRank });

describe('resolveConflict', () => {
  const cases: Array<
    [
      string,
      ConflictKind,
      ConflictPolicy,
      ReturnType<typeof L> | null,
      ReturnType<typeof R>,
      'apply' | 'skip' | 'error',
    ]
  > = [
    [
      'later remote insert wins under last_update_wins',
      'insert_exists',
      'last_update_wins',
      L(10n, 0),
      R(11n, 1),
      'apply',
    ],
    [
      'earlier remote insert loses under last_update_wins',
      'insert_exists',
      'last_update_wins',
      L(10n, 0),
      R(9n, 1),
      'skip',
    ],
    [
      'exact tie: remote of lower rank wins',
      'update_differs',
      'last_update_wins',
      L(10n, 2),
      R(10n, 1),
      'apply',
    ],
    [
      'exact tie: local of lower rank wins',
      'update_differs',
      'last_update_wins',
      L(10n, 0),
      R(10n, 1),
      'skip',
    ],
    [
      'unknown local timestamp: remote applied',
      'update_differs',
      'last_update_wins',
      L(null, 0),
      R(1n, 1),
      'apply',
    ],
    [
      'first_update_wins keeps the earlier local row',
      'insert_exists',
      'first_update_wins',
      L(10n, 1),
      R(11n, 0),
      'skip',
    ],
    [
      'first_update_wins applies an earlier remote row',
      'insert_exists',
      'first_update_wins',
      L(10n, 1),
      R(9n, 0),
      'apply',
    ],
    [
      'first_update_wins tie: lower rank wins',
      'update_differs',
      'first_update_wins',
      L(10n, 1),
      R(10n, 0),
      'apply',
    ],
    ['apply_remote always applies', 'update_differs', 'apply_remote', L(20n, 0), R(1n, 1), 'apply'],
    ['keep_local always skips', 'insert_exists', 'keep_local', L(1n, 0), R(20n, 1), 'skip'],
    ['error policy errors', 'insert_exists', 'error', L(1n, 0), R(20n, 1), 'error'],
    [
      'update of a deleted row is skipped (delete wins)',
      'update_missing',
      'last_update_wins',
      null,
      R(20n, 1),
      'skip',
    ],
    [
      'update of a deleted row is skipped under apply_remote too',
      'update_missing',
      'apply_remote',
      null,
      R(20n, 1),
      'skip',
    ],
    ['delete of a missing row is skipped', 'delete_missing', 'last_update_wins', null, R(20n, 1), 'skip'],
    [
      'delete of a row changed elsewhere is applied (delete wins)',
      'delete_differs',
      'last_update_wins',
      L(30n, 0),
      R(20n, 1),
      'apply',
    ],
    ['delete under keep_local is skipped', 'delete_differs', 'keep_local', L(30n, 0), R(20n, 1), 'skip'],
    ['delete_missing under error policy errors', 'delete_missing', 'error', null, R(20n, 1), 'error'],
  ];
  it.each(cases)('%s', (_name, kind, policy, local, remote, want) => {
    const d = resolveConflict(kind, policy, local, remote);
    expect(d.resolution).toBe(want);
    expect(d.reason.length).toBeGreaterThan(0);
  });

  it('converges: two nodes meeting the same pair of versions keep the same winner', () => {
    // Node 0 wrote at ts, node 1 wrote at ts2; each node sees the other's change as remote.
    for (const [ts0, ts1] of [
      [5n, 7n],
      [7n, 5n],
      [6n, 6n],
    ] as const) {
      for (const policy of ['last_update_wins', 'first_update_wins'] as const) {
        const atNode0 = resolveConflict('update_differs', policy, L(ts0, 0), R(ts1, 1)).resolution; // apply → node1's row
        const atNode1 = resolveConflict('update_differs', policy, L(ts1, 1), R(ts0, 0)).resolution; // apply → node0's row
        const winner0 = atNode0 === 'apply' ? 1 : 0;
        const winner1 = atNode1 === 'apply' ? 0 : 1;
        expect(winner0, `${policy} ${ts0}/${ts1}`).toBe(winner1);
      }
    }
  });
});
