import { describe, expect, it } from 'vitest';
import { fastGroupSql, type GroupShape, seenCondition } from './group-sql.js';
import { groupFunctionSql, procedureParamCount, procedureSql, type TxShape } from './shape-sql.js';
import type { ApplyTable } from './statements.js';

const t: ApplyTable = {
  schema: 'app',
  name: 'Orders',
  columns: [
    { name: 'id', type: 'bigint', isKey: true, identityAlways: true },
    { name: 'v', type: 'text', isKey: false },
    { name: 'at', type: 'timestamp with time zone', isKey: false },
  ],
  keyIndexes: [0],
  identityFull: false,
};
const insert: GroupShape = { table: t, kind: 'insert', setIndexes: [0, 1, 2] };
const update: GroupShape = { table: t, kind: 'update', setIndexes: [0, 1] };
const del: GroupShape = { table: t, kind: 'delete', setIndexes: [] };
const ctx = () => ({
  edge: { id: 'a_b', source: 'a', target: 'b' },
  sourceRank: 0,
  policy: 'last_update_wins' as const,
});

describe('generated apply SQL', () => {
  it('decides "seen" in the WHERE of the statement, on the row it writes (EvalPlanQual re-checks it after a lock wait)', () => {
    const sql = fastGroupSql(1, update, { index: 'i' }, 'p_sv[i]', 'X');
    expect(sql).toMatch(
      /^UPDATE ONLY "app"\."Orders" AS t SET "v" = \(g1_a\[3\]\[i\]\)::text WHERE t\."id" = \(g1_a\[1\]\[i\]\)::bigint/,
    );
    expect(sql).toContain(`AND ${seenCondition('t', 'p_sv[i]')}`);
    expect(seenCondition('t', 'v')).toBe(
      '(coalesce(pg_xact_commit_timestamp(t.xmin) <= p_floor, true) OR (pg_xact_commit_timestamp_origin(t.xmin)).timestamp <= p_seen[v][(pg_xact_commit_timestamp_origin(t.xmin)).roident])',
    );
  });

  it('never assigns an identity ALWAYS column: it must be unchanged, or the careful pass moves the row', () => {
    const sql = fastGroupSql(1, update, { index: 'i' }, 'p_sv[i]', 'X');
    expect(sql.slice(sql.indexOf(' SET '), sql.indexOf(' WHERE '))).toBe(' SET "v" = (g1_a[3][i])::text');
    expect(sql).toContain('AND t."id" = (g1_a[2][i])::bigint');
  });

  it('a single-row insert skips an existing key (ON CONFLICT), several rows insert plainly in a subtransaction', () => {
    const one = fastGroupSql(2, insert, { index: 'i' }, 'p_sv[i]', 'MISMATCH;');
    expect(one).toContain(
      'OVERRIDING SYSTEM VALUE VALUES ((g2_a[1][i])::bigint, (g2_a[2][i])::text, (g2_a[3][i])::timestamp with time zone) ON CONFLICT ("id") DO NOTHING; IF NOT FOUND THEN MISMATCH; END IF;',
    );
    const many = fastGroupSql(2, insert, { lo: 'g2_r[1][i]', hi: 'g2_r[2][i]' }, 'p_sv[i]', 'MISMATCH;');
    expect(many).toContain('FROM generate_series(g2_r[1][i], g2_r[2][i]) AS k;');
    expect(many).toContain('EXCEPTION WHEN unique_violation THEN pgf_n := -1; END;');
    expect(many).not.toContain('ON CONFLICT');
    expect(many).toMatch(/IF pgf_n <> g2_r\[2\]\[i\] - g2_r\[1\]\[i\] \+ 1 THEN MISMATCH; END IF;$/);
  });

  it('a procedure sets origin progress only right before COMMIT, after the careful pass, never before a ROLLBACK', () => {
    const shape: TxShape = {
      groups: [
        { shape: update, single: true },
        { shape: del, single: false },
      ],
      persists: false,
    };
    const [careful, proc] = procedureSql('pgf_s1', shape, ctx, 'a_b') as [string, string];
    expect(careful).toMatch(/^CREATE OR REPLACE FUNCTION pg_temp\."pgf_s1_c"\(i int, p_expected pg_lsn/);
    expect(careful).toContain('FOR UPDATE OF t');
    expect(careful).toContain('PERFORM pgfleet.record_conflicts(pgf_conf);');
    const guard = proc.indexOf('PERFORM pgfleet.apply_guard(p_expected); FOR i IN');
    const rollback = proc.indexOf('ROLLBACK; PERFORM pg_temp."pgf_s1_c"(i, ');
    const setup = proc.indexOf(
      'PERFORM pg_replication_origin_xact_setup(p_end[i], p_ts[i]); COMMIT; END LOOP;',
    );
    expect(guard).toBeGreaterThan(0);
    expect(rollback).toBeGreaterThan(guard);
    expect(setup).toBeGreaterThan(proc.lastIndexOf('ROLLBACK'));
    expect(proc.match(/xact_setup/g)).toHaveLength(1);
    expect(proc).not.toContain('edge_seen');
    const [, persisting] = procedureSql('pgf_s2', { ...shape, persists: true }, ctx, 'a_b') as [
      string,
      string,
    ];
    expect(persisting).toContain(
      "IF p_persist[i] IS NOT NULL THEN UPDATE pgfleet.edge_seen SET seen = p_persist[i] WHERE edge = 'a_b'; END IF; PERFORM pg_replication_origin_xact_setup",
    );
  });

  it('keeps a procedure of the largest shape within the 100 arguments a function may take', () => {
    const groups = Array.from({ length: 32 }, () => ({ shape: insert, single: false }));
    expect(procedureParamCount({ groups, persists: true }) + 1).toBeLessThanOrEqual(100);
  });

  it('a group function tries optimistically in a subtransaction and falls back to the careful pass', () => {
    const fn = groupFunctionSql('pgf_g3', del, ctx());
    expect(fn).toMatch(
      /BEGIN DELETE FROM ONLY "app"\."Orders" AS t USING generate_series\(pgf_lo, pgf_hi\) AS k/,
    );
    expect(fn).toContain("EXCEPTION WHEN SQLSTATE 'PF004' THEN pgf_ok := false; END; IF NOT pgf_ok THEN");
    expect(fn).toContain("'delete_differs'");
  });
});
