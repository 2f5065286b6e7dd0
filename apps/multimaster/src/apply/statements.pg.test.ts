import { connect } from '@pgfleet/connection';
import { testServer } from '@pgfleet/sandbox/vitest';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestMetadata } from '../metadata-test-support.js';
import { committedProgressSql, forgetOrigin, setUpOrigin } from './progress-mark.js';
import {
  type ApplyTable,
  commitStatement,
  deleteByCtidStatement,
  insertOneStatement,
  lastCommand,
  lookupStatement,
  moveRowStatement,
  truncateStatement,
  updateByCtidStatement,
} from './statements.js';

// Text-only unit tests let `INSERT INTO ONLY ...` (a syntax error) through, which sent every
// replicated INSERT down the slow careful path. These run each statement on a real server.
const t: ApplyTable = {
  schema: 'mm stmt "S"',
  name: 'Tbl',
  columns: [
    { name: 'id', type: 'integer', isKey: true },
    { name: 'Big Text', type: 'text', isKey: false },
    { name: 'tags', type: 'text[]', isKey: false },
  ],
  keyIndexes: [0],
  identityFull: false,
};
const Q = '"mm stmt ""S"""."Tbl"';

describe('apply statements on a real server', () => {
  let db: pg.Client;

  beforeAll(async () => {
    db = await connect(testServer().conninfo);
    await createTestMetadata(db);
    await db.query(`CREATE SCHEMA IF NOT EXISTS "mm stmt ""S"""`);
    await db.query(`CREATE TABLE IF NOT EXISTS ${Q} (id int PRIMARY KEY, "Big Text" text, tags text[])`);
    await db.query(`TRUNCATE ${Q}`);
  });
  afterAll(async () => {
    await db?.query(`DROP SCHEMA IF EXISTS "mm stmt ""S""" CASCADE`).catch(() => {});
    await db?.end();
  });

  it('careful-path lookup, INSERT, UPDATE and DELETE by ctid, and TRUNCATE run', async () => {
    await db.query('BEGIN');
    try {
      await db.query(insertOneStatement(t, [0, 1, 2]), ['7', 'seven', '{a}']);
      const found = await db.query(lookupStatement(t), ['7']);
      expect(found.rows).toHaveLength(1);
      expect(found.rows[0]).toMatchObject({ mine: true, row: { id: 7, 'Big Text': 'seven' } });
      await db.query(updateByCtidStatement(t, [1]), [found.rows[0].ctid, 'SEVEN']);
      const again = await db.query(lookupStatement(t), ['7']);
      expect(again.rows[0].row['Big Text']).toBe('SEVEN');
      await db.query(deleteByCtidStatement(t), [again.rows[0].ctid]);
      expect((await db.query(lookupStatement(t), ['7'])).rows).toEqual([]);
      await db.query(insertOneStatement(t, [0]), ['8']);
      await db.query(truncateStatement([t], { cascade: false, restartIdentity: true }));
      expect((await db.query(`SELECT count(*)::int AS n FROM ${Q}`)).rows).toEqual([{ n: 0 }]);
    } finally {
      await db.query('ROLLBACK');
    }
  });

  describe('ending an apply transaction', () => {
    const ORIGIN = 'pgfleet_stmt_pg_test';
    const progress = async () =>
      (
        await db.query(`SELECT coalesce(pg_replication_origin_progress($1, false), '0/0')::text AS l`, [
          ORIGIN,
        ])
      ).rows[0].l as string;
    const session = async () => {
      const c = await connect(testServer().conninfo);
      await setUpOrigin(c, ORIGIN);
      return c;
    };
    beforeAll(async () => {
      await db.query(
        `SELECT pg_replication_origin_create($1) WHERE NOT EXISTS (SELECT 1 FROM pg_replication_origin WHERE roname = $1)`,
        [ORIGIN],
      );
    });
    afterAll(async () => {
      await db.query('SELECT pg_replication_origin_drop($1)', [ORIGIN]).catch(() => {});
      await forgetOrigin(db, ORIGIN);
    });

    it('commitStatement commits the rows and the origin progress together, pipelined', async () => {
      const c = await session();
      try {
        (c as unknown as { pipeline: boolean }).pipeline = true;
        const begin = c.query('BEGIN');
        const ins = c.query(`INSERT INTO ${Q} (id) VALUES (100)`);
        const commit = c.query(commitStatement(ORIGIN, '0/A000', '2024-01-02 03:04:05.123456+00'));
        await Promise.all([begin, ins]);
        expect(lastCommand(await commit)).toBe('COMMIT');
      } finally {
        await c.end();
      }
      expect(await progress()).toBe('0/A000');
      // The witness: the progress before (none) and a committed xid, so the origin is right.
      expect(
        (await db.query(`SELECT ${committedProgressSql('$1', false)}::text AS l`, [ORIGIN])).rows,
      ).toEqual([{ l: '0/A000' }]);
      expect((await db.query(`SELECT count(*)::int AS n FROM ${Q} WHERE id = 100`)).rows).toEqual([{ n: 1 }]);
      await db.query(`DELETE FROM ${Q} WHERE id = 100`);
    });

    // The server behaviour commitStatement exists for: a session that dies between the
    // origin setup and COMMIT aborts, and from 16 on that abort still moves the origin.
    it('an abort after pg_replication_origin_xact_setup moves the origin from PostgreSQL 16 on', async () => {
      const before = await progress();
      const c = await session();
      await c.query('BEGIN');
      await c.query(`INSERT INTO ${Q} (id) VALUES (101)`);
      await c.query(`SELECT pg_replication_origin_xact_setup('0/B000', now())`);
      await c.end(); // no COMMIT: the backend aborts the transaction
      await new Promise((r) => setTimeout(r, 200));
      expect(await progress()).toBe(testServer().major >= 16 ? '0/B000' : before);
      expect((await db.query(`SELECT count(*)::int AS n FROM ${Q} WHERE id = 101`)).rows).toEqual([{ n: 0 }]);
    });
  });
  it('keeps the source value of a GENERATED ALWAYS identity column (no 428C9)', async () => {
    const idt: ApplyTable = {
      schema: 'mm stmt "S"',
      name: 'Ident',
      columns: [
        { name: 'id', type: 'bigint', isKey: true },
        { name: 'v', type: 'text', isKey: false },
      ],
      keyIndexes: [0],
      identityFull: false,
    };
    const QI = '"mm stmt ""S"""."Ident"';
    await db.query(
      `CREATE TABLE IF NOT EXISTS ${QI} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text)`,
    );
    await db.query('BEGIN');
    try {
      await db.query(insertOneStatement(idt, [0, 1]), ['43', 'z']);
      const ids = (await db.query(`SELECT id::text AS id FROM ${QI} ORDER BY id`)).rows.map((r) => r.id);
      expect(ids).toEqual(['43']);
    } finally {
      await db.query('ROLLBACK');
    }
  });
  it('updates a GENERATED ALWAYS identity table without assigning the identity, and moves a row whose identity value changed', async () => {
    const idt: ApplyTable = {
      schema: 'mm stmt "S"',
      name: 'Ident2',
      columns: [
        { name: 'id', type: 'bigint', isKey: true, identityAlways: true },
        { name: 'v', type: 'text', isKey: false },
        { name: 'big', type: 'text', isKey: false },
      ],
      keyIndexes: [0],
      identityFull: false,
      unsentColumns: ['note'],
    };
    const QI = '"mm stmt ""S"""."Ident2"';
    await db.query(
      `CREATE TABLE IF NOT EXISTS ${QI} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text, big text, note text, twice bigint GENERATED ALWAYS AS (id * 2) STORED)`,
    );
    await db.query('BEGIN');
    try {
      await db.query(
        `INSERT INTO ${QI} (id, v, big, note) OVERRIDING SYSTEM VALUE VALUES (7, 'a', 'large', 'kept')`,
      );
      const ctid = async (id: number) =>
        (await db.query(`SELECT ctid::text AS c FROM ${QI} WHERE id = $1`, [id])).rows[0]?.c as string;
      // Careful path, identity unchanged: the move does nothing, the update goes in place.
      expect((await db.query(moveRowStatement(idt, [0, 1]), [await ctid(7), '7', 'c'])).rowCount).toBe(0);
      await db.query(updateByCtidStatement(idt, [1]), [await ctid(7), 'c']);
      // The source ran UPDATE ... SET id = DEFAULT: id 7 became 8, big came as unchanged TOAST.
      expect((await db.query(moveRowStatement(idt, [0, 1]), [await ctid(7), '8', 'd'])).rowCount).toBe(1);
      expect(
        (await db.query(`SELECT id::int, v, big, note, twice::int FROM ${QI} ORDER BY id`)).rows,
      ).toEqual([{ id: 8, v: 'd', big: 'large', note: 'kept', twice: 16 }]);
    } finally {
      await db.query('ROLLBACK');
    }
  });
});
