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
const EDGE_AB = { id: 'a_b', origin: 'pgfleet_a' };
const ctx = () => ({
  edge: { id: 'a_b', source: 'a', target: 'b' },
  sourceRank: 0,
  policy: 'last_update_wins' as const,
});

describe('generated apply SQL', () => {
  it('decides "seen" in the WHERE of the statement, on the row it writes (EvalPlanQual re-checks it after a lock wait)', () => {
    const sql = fastGroupSql(1, update, { index: 'i' }, 'p_sv[i]', 'X');
    expect(sql).toMatch(
      /^UPDATE ONLY "app"\."Orders" AS t SET "v" = \(g1_a\[i\]\[3\]\)::text WHERE t\."id" = \(g1_a\[i\]\[1\]\)::bigint/,
    );
    expect(sql).toContain(`AND ${seenCondition('t', 'p_sv[i]')}`);
    expect(seenCondition('t', 'v')).toBe(
      '(coalesce(pg_xact_commit_timestamp(t.xmin) <= p_floor, true) OR (pg_xact_commit_timestamp_origin(t.xmin)).timestamp <= p_seen[v][(pg_xact_commit_timestamp_origin(t.xmin)).roident])',
    );
  });

  it('never assigns an identity ALWAYS column: it must be unchanged, or the careful pass moves the row', () => {
    const sql = fastGroupSql(1, update, { index: 'i' }, 'p_sv[i]', 'X');
    expect(sql.slice(sql.indexOf(' SET '), sql.indexOf(' WHERE '))).toBe(' SET "v" = (g1_a[i][3])::text');
    expect(sql).toContain('AND t."id" = (g1_a[i][2])::bigint');
  });

  it('a single-row insert skips an existing key (ON CONFLICT), several rows insert plainly in a subtransaction', () => {
    const one = fastGroupSql(2, insert, { index: 'i' }, 'p_sv[i]', 'MISMATCH;');
    expect(one).toContain(
      'OVERRIDING SYSTEM VALUE VALUES ((g2_a[i][1])::bigint, (g2_a[i][2])::text, (g2_a[i][3])::timestamp with time zone) ON CONFLICT ("id") DO NOTHING; IF NOT FOUND THEN MISMATCH; END IF;',
    );
    // Plain (the batcher's default for single rows): an existing key fails the statement.
    const plain = fastGroupSql(2, insert, { index: 'i' }, 'p_sv[i]', 'MISMATCH;', true);
    expect(plain).toBe(
      'INSERT INTO "app"."Orders" AS t ("id", "v", "at") OVERRIDING SYSTEM VALUE VALUES ((g2_a[i][1])::bigint, (g2_a[i][2])::text, (g2_a[i][3])::timestamp with time zone);',
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
    const [careful, proc] = procedureSql('pgf_s1', shape, ctx, EDGE_AB) as [string, string];
    expect(careful).toMatch(/^CREATE OR REPLACE FUNCTION pg_temp\."pgf_s1_c"\(i int, p_expected pg_lsn/);
    expect(careful).toContain('FOR UPDATE OF t');
    expect(careful).toContain('PERFORM pgfleet.record_conflicts(pgf_conf);');
    const guard = proc.indexOf('pgf_void := pgfleet.apply_guard(p_expected) IS NULL; FOR i IN');
    const rollback = proc.indexOf('ROLLBACK; PERFORM pg_temp."pgf_s1_c"(i, ');
    // The witness is left right before the origin is named: previous progress, then xid.
    const setup = proc.indexOf(
      `pgf_void := setval('"pgfleet"."pgfleet_a:lsn"'::regclass, (coalesce(pg_replication_origin_session_progress(false), '0/0') - '0/0'::pg_lsn)::int8) IS NULL; ` +
        `pgf_void := setval('"pgfleet"."pgfleet_a:xid"'::regclass, txid_current()) IS NULL; ` +
        'pgf_void := pg_replication_origin_xact_setup(p_end[i], p_ts[i]) IS NULL; COMMIT; END LOOP;',
    );
    expect(guard).toBeGreaterThan(0);
    expect(rollback).toBeGreaterThan(guard);
    expect(setup).toBeGreaterThan(proc.lastIndexOf('ROLLBACK'));
    expect(proc.match(/xact_setup/g)).toHaveLength(1);
    expect(proc).not.toContain('edge_seen');
    const [, persisting] = procedureSql('pgf_s2', { ...shape, persists: true }, ctx, EDGE_AB) as [
      string,
      string,
    ];
    expect(persisting).toContain(
      "IF p_persist[i] IS NOT NULL THEN UPDATE pgfleet.edge_seen SET seen = p_persist[i] WHERE edge = 'a_b'; END IF; pgf_void := setval(",
    );
  });

  it('a shape of one-row groups applies a row that fell short carefully in place: no ROLLBACK, no companion', () => {
    const plain: ApplyTable = {
      ...t,
      columns: t.columns.map((c) => ({ ...c, identityAlways: false })),
    };
    const shape: TxShape = {
      groups: [
        { shape: { table: plain, kind: 'update', setIndexes: [1] }, single: true },
        { shape: { table: plain, kind: 'insert', setIndexes: [0, 1, 2] }, single: true },
      ],
      persists: false,
    };
    const statements = procedureSql('pgf_s3', shape, ctx, EDGE_AB);
    expect(statements).toHaveLength(1);
    const proc = statements[0] as string;
    expect(proc).not.toContain('ROLLBACK');
    // The update's careful pass locks its row and writes by ctid, inside the IF NOT FOUND of its statement.
    const update = proc.indexOf('UPDATE ONLY "app"."Orders" AS t SET "v" = (g1_a[i][2])::text WHERE t."id"');
    const lock = proc.indexOf(
      'SELECT t.ctid, t.xmin, to_jsonb(t) INTO pgf_c, pgf_x, pgf_img FROM ONLY "app"."Orders" AS t WHERE t."id" = (g1_a[i][1])::bigint FOR UPDATE OF t;',
    );
    const insert = proc.indexOf('INSERT INTO "app"."Orders"');
    expect(update).toBeGreaterThan(0);
    expect(lock).toBeGreaterThan(update);
    expect(insert).toBeGreaterThan(lock);
    expect(proc.slice(update, lock)).toContain('IF NOT FOUND THEN pgf_v := p_sv[i];');
    // A version the source had seen is written over; otherwise the decision is written out for
    // the kind and policy (no function call), and the write goes with the conflict's record.
    expect(proc).toContain(
      'IF coalesce(pgf_lts IS NULL OR pgf_lts <= p_floor OR pgf_lts <= p_seen[pgf_v][pgf_lid], false) THEN UPDATE ONLY "app"."Orders" AS t SET "v" = (g1_a[i][2])::text WHERE t.ctid = pgf_c; ' +
        "ELSE pgf_kind := 'update_differs'; pgf_res := CASE WHEN (pgf_lts IS NULL OR pgf_ts > pgf_lts OR",
    );
    expect(proc).toContain("pgf_kind := 'update_missing'; pgf_res := 'skip';");
    expect(proc).not.toContain('resolve_conflict');
    expect(proc).toContain(
      "INSERT INTO pgfleet.conflicts (edge, source_node, target_node, table_schema, table_name, kind, policy, resolution, reason, key, local_row, remote_row, local_commit_ts, local_origin, remote_commit_ts, remote_commit_lsn, remote_xid) VALUES ('a_b', 'a', 'b', 'app', 'Orders', pgf_kind, 'last_update_wins', pgf_res, pgf_why, jsonb_build_object('id', g1_a[i][1]), pgf_img, jsonb_build_object('id', g1_a[i][1], 'v', g1_a[i][2]),",
    );
    // Nothing is sent per conflict: the edge reads the rows once committed (conflict-tail.ts).
    expect(proc).not.toContain('RAISE NOTICE');
    expect(proc).not.toContain('PF003');
    const [refusing] = procedureSql('pgf_s4', shape, () => ({ ...ctx(), policy: 'error' as const }), EDGE_AB);
    expect(refusing).toContain(
      "RAISE EXCEPTION 'pgfleet: conflict % on %.% under policy error', pgf_kind, 'app', 'Orders' USING ERRCODE = 'PF003'; INSERT INTO pgfleet.conflicts",
    );
    expect(proc).toContain(
      `WITH pgf_w AS (UPDATE ONLY "app"."Orders" AS t SET "v" = (g1_a[i][2])::text WHERE t.ctid = pgf_c AND pgf_res = 'apply') INSERT INTO pgfleet.conflicts`,
    );
    // The insert's careful pass works on its one row.
    expect(proc).toContain(
      'pgf_lo := i; pgf_hi := i; pgf_todo := ARRAY(SELECT generate_series(pgf_lo, pgf_hi));',
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
