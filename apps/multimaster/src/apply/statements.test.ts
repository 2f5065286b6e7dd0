import { describe, expect, it } from 'vitest';
import {
  type ApplyTable,
  commitStatement,
  insertOneStatement,
  keyMatch,
  lastCommand,
  lookupStatement,
  moveRowStatement,
  truncateStatement,
  updateByCtidStatement,
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

  it('moves a row whose identity ALWAYS value changed: delete and insert with OVERRIDING SYSTEM VALUE, keeping unsent columns', () => {
    // sent: id, region, seq (total was unchanged TOAST)
    expect(moveRowStatement(ident, [0, 1, 2])).toBe(
      'WITH old AS (DELETE FROM ONLY "public"."orders" AS t WHERE t.ctid = $1::tid AND (t."id", t."seq") IS DISTINCT FROM ($2::text::bigint, $4::text::bigint) RETURNING t.*) ' +
        'INSERT INTO "public"."orders" ("id", "region", "seq", "total", "note") OVERRIDING SYSTEM VALUE SELECT $2::text::bigint, $3::text::text, $4::text::bigint, old."total", old."note" FROM old',
    );
  });

  it('origin setup and COMMIT travel as one simple-query message with inlined literals', () => {
    expect(commitStatement('pgfleet_a', '0/16B3748', '2024-01-02 03:04:05.123456+00')).toBe(
      "SELECT setval('\"pgfleet\".\"pgfleet_a:lsn\"'::regclass, (coalesce(pg_replication_origin_session_progress(false), '0/0') - '0/0'::pg_lsn)::int8); " +
        `SELECT setval('"pgfleet"."pgfleet_a:xid"'::regclass, txid_current()); ` +
        "SELECT pg_replication_origin_xact_setup('0/16B3748'::pg_lsn, '2024-01-02 03:04:05.123456+00'::timestamptz); COMMIT",
    );
  });

  it('stamps a commit pgfleet writes itself with the server clock it is given', () => {
    expect(commitStatement('pgfleet_a', '0/10', { sql: 'clock_timestamp()' })).toMatch(
      /; SELECT pg_replication_origin_xact_setup\('0\/10'::pg_lsn, clock_timestamp\(\)\); COMMIT$/,
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
});
