import { connect } from '@pgfleet/connection';
import { testServer } from '@pgfleet/sandbox/vitest';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONFLICT_POLICIES, type ConflictPolicy } from '../config.js';
import { CONFLICT_KINDS, type ConflictKind, resolveConflict } from '../conflict.js';
import { createTestMetadata } from '../metadata-test-support.js';
import { formatPgTimestamp } from '../pg-time.js';

/**
 * The set-based apply decides conflicts with pgfleet.resolve_conflict, the change-by-change
 * path with resolveConflict: both must decide every case alike, or nodes would diverge
 * depending on the path a change took.
 */
describe('pgfleet.resolve_conflict decides as resolveConflict', () => {
  let db: pg.Client;
  beforeAll(async () => {
    db = await connect(testServer().conninfo);
    await createTestMetadata(db);
  });
  afterAll(async () => {
    await db?.end();
  });

  const versions: Array<[string, { commitTs: bigint | null; originRank: number } | null]> = [
    ['no local row', null],
    ['unknown local time', { commitTs: null, originRank: 1 }],
    ['earlier local', { commitTs: 100n, originRank: 1 }],
    ['later local', { commitTs: 300n, originRank: 1 }],
    ['tie, local rank lower', { commitTs: 200n, originRank: 0 }],
    ['tie, local rank higher', { commitTs: 200n, originRank: 2 }],
    ['tie, unknown local rank', { commitTs: 200n, originRank: Number.MAX_SAFE_INTEGER }],
  ];
  const cases: Array<[ConflictKind, ConflictPolicy, string, (typeof versions)[number][1]]> = [];
  for (const kind of CONFLICT_KINDS)
    for (const policy of CONFLICT_POLICIES)
      for (const [name, v] of versions) cases.push([kind, policy, name, v]);

  it(`agrees on all ${CONFLICT_KINDS.length * CONFLICT_POLICIES.length * versions.length} combinations of kind, policy and local version`, async () => {
    const remote = { commitTs: 200n, sourceRank: 1 };
    const { rows } = await db.query(
      `SELECT (pgfleet.resolve_conflict(c.kind, c.policy, c.lts::timestamptz, c.lrank::int8, $1::timestamptz, $2::int8)).*
         FROM unnest($3::text[], $4::text[], $5::text[], $6::text[]) WITH ORDINALITY AS c(kind, policy, lts, lrank, n) ORDER BY n`,
      [
        formatPgTimestamp(remote.commitTs),
        remote.sourceRank,
        cases.map((c) => c[0]),
        cases.map((c) => c[1]),
        cases.map((c) => (c[3]?.commitTs == null ? null : formatPgTimestamp(c[3].commitTs))),
        cases.map((c) => (c[3] ? String(c[3].originRank) : null)),
      ],
    );
    const want = cases.map(([kind, policy, , v]) => resolveConflict(kind, policy, v, remote));
    expect(rows.map((r, i) => ({ case: cases[i]?.slice(0, 3).join(' / '), ...r }))).toEqual(
      want.map((w, i) => ({ case: cases[i]?.slice(0, 3).join(' / '), ...w })),
    );
  });
});
