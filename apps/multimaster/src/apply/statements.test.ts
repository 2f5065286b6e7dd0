import { describe, expect, it } from 'vitest';
import {
  type ApplyTable,
  callBatchStatement,
  commitStatement,
  deleteStatement,
  insertBatchProcedure,
  insertOneStatement,
  insertStatement,
  keyMatch,
  lastCommand,
  lookupStatement,
  moveRowStatement,
  truncateStatement,
  updateByCtidStatement,
  updateStatement,
} from './statements.js';

const t: ApplyTable = {
  schema: 'My "S"',
  name: 'Tbl',
  columns: [
    { name: 'id', type: 'integer', isKey: true },
    { name: 'Big Text', type: 'text', isKey: false },
    { name: 'mood', type: 'app."Mood"', isKey: false },
  ],
  keyIndexes: [0],
  identityFull: false,
};

describe('apply statements', () => {
  it('INSERT casts each text[] element to the column type and quotes identifiers', () => {
    expect(insertStatement(t, [0, 1, 2]).text).toBe(
      'INSERT INTO "My ""S"""."Tbl" AS t ("id", "Big Text", "mood") OVERRIDING SYSTEM VALUE SELECT c0::integer AS c0, c1::text AS c1, c2::app."Mood" AS c2 FROM unnest($1::text[], $2::text[], $3::text[]) AS u(c0, c1, c2)',
    );
  });

  it('UPDATE sets only the given columns (unchanged TOAST left out) and checks the row count', () => {
    const s = updateStatement(t, [2]).text;
    expect(s).toContain('SET "mood" = v.c0');
    expect(s).not.toContain('"Big Text" =');
    expect(s).toContain('t."id" = v.k0');
    expect(s).toContain('roident = $3::oid');
    expect(s).toContain('pgfleet.expect_rows(count(*), $4::int8)');
  });

  it('DELETE matches the key and checks ownership', () => {
    const s = deleteStatement(t).text;
    expect(s).toContain('DELETE FROM ONLY "My ""S"""."Tbl" AS t USING v WHERE t."id" = v.c0');
    expect(s).toContain('$2::oid');
    expect(s).toContain('$3::int8');
  });

  it('TRUNCATE lists every table and honours restart identity / cascade', () => {
    expect(truncateStatement([t], { cascade: true, restartIdentity: true })).toBe(
      'TRUNCATE ONLY "My ""S"""."Tbl" RESTART IDENTITY CASCADE',
    );
  });

  it('careful path binds one text parameter per value with an explicit cast', () => {
    expect(updateByCtidStatement(t, [1])).toBe(
      'UPDATE ONLY "My ""S"""."Tbl" SET "Big Text" = $2::text::text WHERE ctid = $1::tid',
    );
    expect(keyMatch(t, 1)).toBe('t."id" = $1::text::integer');
    expect(keyMatch({ ...t, identityFull: true, keyIndexes: [0, 1] }, 1)).toBe(
      't."id"::text IS NOT DISTINCT FROM $1::text AND t."Big Text"::text IS NOT DISTINCT FROM $2::text',
    );
  });

  it('the careful lookup locks the row in a subquery and reads its commit timestamp above the lock', () => {
    const s = lookupStatement(t);
    const lock = s.indexOf('FOR UPDATE OF t)');
    expect(lock).toBeGreaterThan(-1);
    // Computed after the subquery that locked (EvalPlanQual would reuse a LATERAL row from before a lock wait).
    expect(s.indexOf('pg_xact_commit_timestamp_origin(l.x)')).toBeGreaterThan(lock);
    expect(s).toContain('t.xmin AS x');
  });

  it('the careful insert lets a concurrently inserted key through as "nothing inserted" (then insert_exists)', () => {
    expect(insertOneStatement(t, [0, 1, 2])).toMatch(/ ON CONFLICT \("id"\) DO NOTHING$/);
    expect(insertOneStatement({ ...t, identityFull: true }, [0, 1])).not.toContain('ON CONFLICT');
  });

  const ident: ApplyTable = {
    schema: 'public',
    name: 'orders',
    columns: [
      { name: 'id', type: 'bigint', isKey: true, identityAlways: true },
      { name: 'region', type: 'text', isKey: false },
      { name: 'seq', type: 'bigint', isKey: false, identityAlways: true },
      { name: 'total', type: 'numeric', isKey: false },
    ],
    keyIndexes: [0],
    identityFull: false,
    unsentColumns: ['note'],
  };

  it('never assigns an identity ALWAYS column in an UPDATE: the fast path requires it unchanged instead', () => {
    const s = updateStatement(ident, [1, 2, 3]).text;
    expect(s).toContain('SET "region" = v.c0, "total" = v.c2');
    expect(s.slice(s.indexOf(' SET '), s.indexOf(' FROM v '))).not.toContain('"seq"');
    expect(s).toContain('t."seq" = v.c1');
    // Nothing but identity columns to set: the row is still touched (new version, new commit timestamp).
    expect(updateStatement(ident, [0]).text).toContain('SET "region" = "region"');
    expect(updateByCtidStatement(ident, [])).toBe(
      'UPDATE ONLY "public"."orders" SET "region" = "region" WHERE ctid = $1::tid',
    );
  });

  it('moves a row whose identity ALWAYS value changed: delete and insert with OVERRIDING SYSTEM VALUE, keeping unsent columns', () => {
    // sent: id, region, seq (total was unchanged TOAST)
    expect(moveRowStatement(ident, [0, 1, 2])).toBe(
      'WITH old AS (DELETE FROM ONLY "public"."orders" AS t WHERE t.ctid = $1::tid AND (t."id", t."seq") IS DISTINCT FROM ($2::text::bigint, $4::text::bigint) RETURNING t.*) ' +
        'INSERT INTO "public"."orders" ("id", "region", "seq", "total", "note") OVERRIDING SYSTEM VALUE SELECT $2::text::bigint, $3::text::text, $4::text::bigint, old."total", old."note" FROM old',
    );
  });

  it('origin setup and COMMIT travel as one simple-query message with inlined literals', () => {
    expect(commitStatement('0/16B3748', '2024-01-02 03:04:05.123456+00')).toBe(
      "SELECT pg_replication_origin_xact_setup('0/16B3748'::pg_lsn, '2024-01-02 03:04:05.123456+00'::timestamptz); COMMIT",
    );
  });

  it.each([
    [{ command: 'COMMIT' }, 'COMMIT'],
    [[{ command: 'SELECT' }, { command: 'COMMIT' }], 'COMMIT'],
    [[{ command: 'SELECT' }, { command: 'ROLLBACK' }], 'ROLLBACK'],
    [null, null],
    [[], null],
  ])('lastCommand(%j) is %j', (result, want) => {
    expect(lastCommand(result)).toBe(want);
  });
  it('batch procedure: guard once, then per transaction its rows, origin setup, COMMIT, in that order', () => {
    const p = insertBatchProcedure(t, [0, 1, 2], 'pgf_b_3');
    expect(p).toMatch(/^CREATE OR REPLACE PROCEDURE pg_temp\."pgf_b_3"\(/);
    expect(p.match(/apply_guard/g)).toHaveLength(1);
    const loop = p.slice(p.indexOf('FOR pgf_i'));
    const insert = loop.indexOf(
      'INSERT INTO "My ""S"""."Tbl" AS t ("id", "Big Text", "mood") OVERRIDING SYSTEM VALUE',
    );
    const setup = loop.indexOf('pg_replication_origin_xact_setup(pgf_ends[pgf_i], pgf_tss[pgf_i])');
    const commit = loop.indexOf('COMMIT;');
    expect(insert).toBeGreaterThan(-1);
    expect(setup).toBeGreaterThan(insert);
    expect(commit).toBeGreaterThan(setup);
    // Values are cast to the target types; the parameters never clash with column names.
    expect(p).toContain('pgf_c2[pgf_lo[pgf_i]]::app."Mood"');
    expect(p).toContain('u.c1::text');
    expect(callBatchStatement('pgf_b_3', 3)).toBe('CALL pg_temp."pgf_b_3"($1, $2, $3, $4, $5, $6, $7, $8)');
  });
});
