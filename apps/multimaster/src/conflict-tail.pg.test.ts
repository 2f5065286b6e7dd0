import { connect } from '@pgfleet/connection';
import { testServer } from '@pgfleet/sandbox/vitest';
import type pg from 'pg';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RecordedConflict } from './conflict.js';
import { ConflictTail } from './conflict-tail.js';
import { createTestMetadata } from './metadata-test-support.js';

describe('ConflictTail reads an edge’s committed conflicts once, in order', () => {
  let db: pg.Client;
  const EDGE = 'tail_s_t';
  const OTHER = 'tail_o_t';

  const record = (c: pg.Client, edge: string, key: number, kind = 'update_differs') =>
    c.query(
      `INSERT INTO pgfleet.conflicts (edge, source_node, target_node, table_schema, table_name, kind, policy, resolution, reason,
                                      key, remote_commit_ts, remote_commit_lsn, remote_xid)
       VALUES ($1, 's', 't', 'app', 'kv', $2, 'last_update_wins', 'apply', 'remote change is later', jsonb_build_object('id', $3::int), now(), '0/1', 1)`,
      [edge, kind, key],
    );

  beforeAll(async () => {
    db = await connect(testServer().conninfo);
    await createTestMetadata(db);
    await db.query('DELETE FROM pgfleet.conflicts WHERE edge IN ($1, $2)', [EDGE, OTHER]);
  });
  afterAll(async () => {
    await db?.query('DELETE FROM pgfleet.conflicts WHERE edge IN ($1, $2)', [EDGE, OTHER]).catch(() => {});
    await db?.end();
  });

  it('starts after what is recorded, reports only this edge’s new rows, skips rolled-back ones, keeps its place across sessions', async () => {
    await record(db, EDGE, 1); // before start: not reported
    const got: RecordedConflict[] = [];
    const lines: unknown[] = [];
    const logger = pino({ level: 'info' }, { write: (l: string) => lines.push(JSON.parse(l)) });
    const tail = new ConflictTail(EDGE, logger, (c) => got.push(c));
    expect(await tail.read(db)).toBe(0); // not started: reads nothing
    await tail.start(db);
    await record(db, EDGE, 2);
    await record(db, OTHER, 3);
    await db.query('BEGIN');
    await record(db, EDGE, 4);
    await db.query('ROLLBACK');
    await record(db, EDGE, 5, 'delete_differs');
    expect(await tail.read(db)).toBe(2);
    expect(got).toEqual([
      { table: 'app.kv', kind: 'update_differs', resolution: 'apply', reason: 'remote change is later' },
      { table: 'app.kv', kind: 'delete_differs', resolution: 'apply', reason: 'remote change is later' },
    ]);
    expect(lines).toEqual([
      expect.objectContaining({ msg: 'conflict', table: 'app.kv', kind: 'update_differs' }),
      expect.objectContaining({ msg: 'conflict', table: 'app.kv', kind: 'delete_differs' }),
    ]);
    expect(await tail.read(db)).toBe(0); // nothing twice
    // A new session of the edge starts again: the position is kept, nothing is lost between.
    await record(db, EDGE, 6);
    await tail.start(db);
    expect(await tail.read(db)).toBe(1);
    expect(got).toHaveLength(3);
  });

  it('reads a burst larger than one page whole, each row once', async () => {
    const keys: number[] = [];
    const tail = new ConflictTail(EDGE, pino({ level: 'silent' }), () => keys.push(keys.length));
    await tail.start(db);
    await db.query(
      `INSERT INTO pgfleet.conflicts (edge, source_node, target_node, table_schema, table_name, kind, policy, resolution, reason,
                                      key, remote_commit_ts, remote_commit_lsn, remote_xid)
       SELECT $1, 's', 't', 'app', 'kv', 'update_differs', 'last_update_wins', 'skip', 'local change is later',
              jsonb_build_object('id', g), now(), '0/1', 1
         FROM generate_series(1, 12001) AS g`,
      [EDGE],
    );
    expect(await tail.read(db)).toBe(12_001);
    expect(keys).toHaveLength(12_001);
    expect(await tail.read(db)).toBe(0);
  });
});
