import { connect, SqlState, sqlStateOf } from '@pgfleet/connection';
import { eventually, Sandbox, type SandboxNode } from '@pgfleet/sandbox';
import { parseLsn } from '@pgfleet/wal';
import type pg from 'pg';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkMesh } from '../check.js';
import type { ResolvedConfig } from '../config.js';
import { initMesh } from '../init/init.js';
import { meshConfig } from '../membership/pg-test-support.js';
import { type ReplicatorHandle, startReplicator } from '../replicator.js';
import { committedProgressSql, setUpOrigin, witnessStatement } from './progress-mark.js';

const logger = pino({ level: process.env.PGFLEET_TEST_LOG ?? 'silent' });

const DDL = 'CREATE SCHEMA app; CREATE TABLE app.items (id int PRIMARY KEY, v text);';

/**
 * What an apply backend ended between naming its transaction and committing it leaves
 * behind: a session holding `origin`, with a pg_temp function (as every apply session has),
 * writes a row, leaves the witness, names `lsn` as its end and is terminated before COMMIT.
 */
async function endBetweenSetupAndCommit(node: SandboxNode, origin: string, lsn: string): Promise<void> {
  const c = await connect(node.conninfo());
  c.on('error', () => {});
  await setUpOrigin(c, origin);
  await c.query(`CREATE FUNCTION pg_temp.pgf_probe() RETURNS int LANGUAGE sql AS 'SELECT 1'`);
  const { rows } = await c.query('SELECT pg_backend_pid() AS pid');
  await c.query('BEGIN');
  await c.query(`INSERT INTO app.items VALUES (-1, 'never committed')`);
  await c.query(witnessStatement(origin));
  await c.query(`SELECT pg_replication_origin_xact_setup('${lsn}', now())`);
  await node.query('SELECT pg_terminate_backend($1)', [rows[0].pid]);
  await eventually(
    'terminated backend gone',
    () => node.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = $1', [rows[0].pid]),
    (r) => r[0]?.n === 0,
    { timeoutMs: 10_000, intervalMs: 20 },
  );
  await c.end().catch(() => {});
}

const originLsn = async (node: SandboxNode, origin: string) =>
  (
    await node.query<{ l: string }>(
      `SELECT coalesce(pg_replication_origin_progress($1, false), '0/0')::text AS l`,
      [origin],
    )
  )[0]?.l;

describe('apply progress: a transaction the origin names but that did not commit is applied again', () => {
  let sb: Sandbox;
  let a: SandboxNode;
  let b: SandboxNode;
  let config: ResolvedConfig;
  let rep: ReplicatorHandle | undefined;

  beforeAll(async () => {
    sb = await Sandbox.create();
    [a, b] = (await sb.startLogicalNodes(['a', 'b'])) as [SandboxNode, SandboxNode];
    for (const n of [a, b]) await n.query(DDL);
    config = meshConfig([a, b]);
    await initMesh(config, { logger });
  });
  afterAll(async () => {
    await rep?.stop();
    await sb?.destroy();
  });

  it('init creates the gate row and the witness sequences of every edge origin', async () => {
    for (const [n, origin] of [
      [a, 'pgfleet_b'],
      [b, 'pgfleet_a'],
    ] as const)
      expect(
        await n.query(
          `SELECT (SELECT count(*)::int FROM pgfleet.apply_origins WHERE origin = $1) AS gate,
                  to_regclass(format('pgfleet.%I', $1 || ':lsn')) IS NOT NULL AS lsn,
                  to_regclass(format('pgfleet.%I', $1 || ':xid')) IS NOT NULL AS xid`,
          [origin],
        ),
        n.name,
      ).toEqual([{ gate: 1, lsn: true, xid: true }]);
  });

  it('on every major the ended session moves the origin; its witness says what committed; the next setup moves the origin back', async () => {
    const origin = 'pgfleet_probe';
    await b.query('SELECT pg_replication_origin_create($1)', [origin]);
    let db: pg.Client | null = await connect(b.conninfo());
    expect(await setUpOrigin(db, origin)).toEqual({ progress: parseLsn('0/0'), rewound: null });
    // A transaction that commits with its witness: the next session finds nothing to undo.
    await db.query('BEGIN');
    await db.query(`INSERT INTO app.items VALUES (-2, 'committed')`);
    await db.query(witnessStatement(origin));
    await db.query(`SELECT pg_replication_origin_xact_setup('0/B000', now())`);
    await db.query('COMMIT');
    await db.end();
    db = await connect(b.conninfo());
    expect(await setUpOrigin(db, origin)).toEqual({ progress: parseLsn('0/B000'), rewound: null });
    await db.end();
    db = null;

    await endBetweenSetupAndCommit(b, origin, '0/C000');
    // The exit commits the pg_temp cleanup with the session's origin and its stale LSN (on
    // 16+ the abort record alone moves it too): the origin claims a transaction that aborted.
    expect(await originLsn(b, origin)).toBe('0/C000');
    expect(await b.query('SELECT count(*)::int AS n FROM app.items WHERE id = -1')).toEqual([{ n: 0 }]);
    expect(
      await b.query(`SELECT ${committedProgressSql('$1', true)}::text AS l`, [origin]),
      'what acknowledgements and resumption read',
    ).toEqual([{ l: '0/B000' }]);

    db = await connect(b.conninfo());
    try {
      expect(await setUpOrigin(db, origin)).toEqual({
        progress: parseLsn('0/B000'),
        rewound: { from: parseLsn('0/C000'), to: parseLsn('0/B000') },
      });
      // Through the probe origin, so that the edge b → a of the last test does not send it.
      await db.query('DELETE FROM app.items WHERE id = -2');
    } finally {
      await db.end();
    }
    expect(await originLsn(b, origin)).toBe('0/B000');
    await b.query('SELECT pg_replication_origin_drop($1)', [origin]);
  });

  it('reads origin and row only once it holds the origin: waits for a session still holding it', async () => {
    const origin = 'pgfleet_probe2';
    await b.query('SELECT pg_replication_origin_create($1)', [origin]);
    const holder = await connect(b.conninfo());
    await holder.query('SELECT pg_replication_origin_session_setup($1)', [origin]);
    const db = await connect(b.conninfo());
    try {
      const err = await setUpOrigin(db, origin, { timeoutMs: 300 }).catch((e: unknown) => e);
      expect(sqlStateOf(err)).toBe(SqlState.OBJECT_IN_USE);
      expect(
        await b.query('SELECT count(*)::int AS n FROM pgfleet.apply_origins WHERE origin = $1', [origin]),
      ).toEqual([{ n: 0 }]);
      const later = setUpOrigin(db, origin, { timeoutMs: 10_000 });
      await holder.end();
      expect(await later).toEqual({ progress: parseLsn('0/0'), rewound: null });
    } finally {
      await db.end();
    }
    await b.query('SELECT pg_replication_origin_drop($1)', [origin]);
  });

  it('an edge whose origin was left ahead applies the skipped transaction after a restart, once', async () => {
    rep = startReplicator(config, { logger });
    await a.query(`INSERT INTO app.items VALUES (1, 'before')`);
    await eventually(
      'row 1 on b',
      () => b.query('SELECT v FROM app.items WHERE id = 1'),
      (r) => r.length === 1,
    );
    await rep.stop();
    rep = undefined;

    // A transaction on a while the edge is down, then b's origin for a is left naming it
    // (or later) by a session that ended before its COMMIT: without the witness the
    // restarted edge would stream from past it and the row would never reach b.
    await a.query(`INSERT INTO app.items VALUES (2, 'skipped by the origin')`);
    const { 0: end } = await a.query<{ l: string }>('SELECT pg_current_wal_insert_lsn()::text AS l');
    await endBetweenSetupAndCommit(b, 'pgfleet_a', end?.l as string);
    expect(await originLsn(b, 'pgfleet_a')).toBe(end?.l);

    rep = startReplicator(config, { logger });
    await a.query(`INSERT INTO app.items VALUES (3, 'after')`);
    await eventually(
      'rows 2 and 3 on b',
      () => b.query<{ id: number }>('SELECT id FROM app.items ORDER BY id'),
      (r) => r.length === 3,
    );
    expect(await b.query('SELECT id, v FROM app.items ORDER BY id')).toEqual([
      { id: 1, v: 'before' },
      { id: 2, v: 'skipped by the origin' },
      { id: 3, v: 'after' },
    ]);
    expect(await b.query('SELECT count(*)::int AS n FROM pgfleet.conflicts')).toEqual([{ n: 0 }]);
    for (const t of await checkMesh(config)) expect(t, t.table).toMatchObject({ equal: true });
  });
});
