import { connect } from '@pgfleet/connection';
import { testServer } from '@pgfleet/sandbox/vitest';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONFLICT_POLICIES, type ConflictPolicy } from '../config.js';
import { CONFLICT_KINDS, type ConflictKind, resolveConflict } from '../conflict.js';
import { formatPgTimestamp } from '../pg-time.js';
import { decisionSql, UNKNOWN_RANK } from './decision-sql.js';

/**
 * The set-based apply decides conflicts with the SQL of decisionSql / decisionFor, the
 * change-by-change path with resolveConflict: both must decide every case alike, or nodes
 * would diverge depending on the path a change took.
 */
describe('the SQL conflict decision decides as resolveConflict', () => {
  let db: pg.Client;
  beforeAll(async () => {
    db = await connect(testServer().conninfo);
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
    const got: Array<Record<string, string>> = [];
    for (const policy of CONFLICT_POLICIES) {
      const mine = cases.filter((c) => c[1] === policy);
      const d = decisionSql('c.kind', policy, {
        lts: 'c.lts::timestamptz',
        lrank: `coalesce(c.lrank::int8, ${UNKNOWN_RANK})`,
        rts: 'r.ts',
        rrank: remote.sourceRank,
      });
      const { rows } = await db.query(
        `SELECT ${d.resolution} AS resolution, ${d.reason} AS reason
           FROM unnest($2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS c(kind, lts, lrank, n), (SELECT $1::timestamptz AS ts) AS r ORDER BY n`,
        [
          formatPgTimestamp(remote.commitTs),
          mine.map((c) => c[0]),
          mine.map((c) => (c[3]?.commitTs == null ? null : formatPgTimestamp(c[3].commitTs))),
          mine.map((c) => (c[3] ? String(c[3].originRank) : null)),
        ],
      );
      got.push(...rows);
    }
    const ordered = CONFLICT_POLICIES.flatMap((p) => cases.filter((c) => c[1] === p));
    const want = ordered.map(([kind, policy, , v]) => resolveConflict(kind, policy, v, remote));
    expect(got.map((r, i) => ({ case: ordered[i]?.slice(0, 3).join(' / '), ...r }))).toEqual(
      want.map((w, i) => ({ case: ordered[i]?.slice(0, 3).join(' / '), ...w })),
    );
  });
});
