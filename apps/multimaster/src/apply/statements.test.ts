import { describe, expect, it } from 'vitest';
import {
  type ApplyTable,
  callBatchStatement,
  commitStatement,
  deleteStatement,
  insertBatchProcedure,
  insertStatement,
  keyMatch,
  lastCommand,
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
