import { connect } from '@pgfleet/connection';
import { eventually, Sandbox, type SandboxNode } from '@pgfleet/sandbox';
import type pg from 'pg';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PRUNE_LOCK_NAME, pruneConflicts } from './conflict-retention.js';
import { LOCK_CLASS } from './ha/claim.js';
import { initMesh } from './init/init.js';
import { meshConfig } from './membership/pg-test-support.js';
import { METADATA_DDL } from './metadata.js';
import { type ReplicatorHandle, startReplicator } from './replicator.js';
import { meshStatus } from './status.js';

const logger = pino({ level: process.env.PGFLEET_TEST_LOG ?? 'silent' });

describe('conflict records are kept within conflictLog retention', () => {
  let sb: Sandbox;
  let a: SandboxNode;
  let b: SandboxNode;
  let db: pg.Client;
  let rep: ReplicatorHandle | undefined;

  /** Records `n` conflicts on node a, `hoursAgo` old; returns their ids. */
  const record = async (n: number, hoursAgo: number): Promise<number[]> => {
    const { rows } = await db.query(
      `INSERT INTO pgfleet.conflicts (recorded_at, edge, source_node, target_node, table_schema, table_name, kind, policy,
                                      resolution, reason, key, remote_commit_ts, remote_commit_lsn, remote_xid)
       SELECT now() - $2::int * interval '1 hour', 'b_a', 'b', 'a', 'app', 'kv', 'update_differs', 'last_update_wins',
              'apply', 'remote change is later', jsonb_build_object('id', g), now(), '0/1', 1
         FROM generate_series(1, $1::int) AS g RETURNING id::int`,
      [n, hoursAgo],
    );
    return rows.map((r) => r.id as number);
  };
  const ids = async (node: { query: pg.Client['query'] } = db): Promise<number[]> =>
    (await node.query('SELECT id::int FROM pgfleet.conflicts ORDER BY id')).rows.map((r) => r.id as number);

  beforeAll(async () => {
    sb = await Sandbox.create();
    [a, b] = (await sb.startLogicalNodes(['a', 'b'])) as [SandboxNode, SandboxNode];
    db = await connect(a.conninfo());
    for (const ddl of METADATA_DDL) await db.query(ddl);
  });
  afterAll(async () => {
    await rep?.stop();
    await db?.end();
    await sb?.destroy();
  });

  it('deletes records older than retentionHours, oldest first, batch by batch, and nothing newer', async () => {
    const old = await record(30, 50);
    const fresh = await record(40, 1);
    // Two batches: 25 old rows, then 5 old rows among 20 fresh ones (fewer than a batch: done).
    expect(await pruneConflicts(db, { retentionHours: 48, maxRows: 0 }, { batch: 25 })).toBe(old.length);
    expect(await ids()).toEqual(fresh);
    // Nothing left past retention: nothing deleted.
    expect(await pruneConflicts(db, { retentionHours: 48, maxRows: 0 }, { batch: 25 })).toBe(0);
    expect(await ids()).toEqual(fresh);
  });

  it('keeps at most maxRows, the newest; both rules 0 keep everything', async () => {
    const kept = await ids();
    expect(await pruneConflicts(db, { retentionHours: 0, maxRows: 0 }, { batch: 25 })).toBe(0);
    expect(await pruneConflicts(db, { retentionHours: 0, maxRows: 10 }, { batch: 25 })).toBe(
      kept.length - 10,
    );
    expect(await ids()).toEqual(kept.slice(-10));
  });

  it('stops after maxBatches (the next prune goes on) and skips while another session prunes', async () => {
    // Records are pruned by id, which follows the time they were recorded.
    await db.query('DELETE FROM pgfleet.conflicts');
    await record(100, 100);
    const fresh = await record(10, 0);
    expect(await pruneConflicts(db, { retentionHours: 48, maxRows: 0 }, { batch: 10, maxBatches: 3 })).toBe(
      30,
    );
    const other = await connect(a.conninfo());
    try {
      await other.query('SELECT pg_advisory_lock($1, hashtext($2))', [LOCK_CLASS, PRUNE_LOCK_NAME]);
      expect(await pruneConflicts(db, { retentionHours: 48, maxRows: 0 }, { batch: 10 })).toBe(0);
      await other.query('SELECT pg_advisory_unlock($1, hashtext($2))', [LOCK_CLASS, PRUNE_LOCK_NAME]);
    } finally {
      await other.end();
    }
    expect(await pruneConflicts(db, { retentionHours: 48, maxRows: 0 }, { batch: 10 })).toBe(70);
    expect(await ids()).toEqual(fresh);
  });

  it('a running replicator prunes each target down to maxRows; every recorded conflict is reported or counted as pruned', async () => {
    await db.query('DROP SCHEMA pgfleet CASCADE');
    for (const n of [a, b])
      await n.query('CREATE SCHEMA app; CREATE TABLE app.kv (id int PRIMARY KEY, v text)');
    const config = {
      ...meshConfig([a, b]),
      conflictLog: { retentionHours: 720, maxRows: 15, pruneIntervalMs: 200 },
    };
    await initMesh(config);
    // The same 40 keys inserted on both nodes before the replicator runs: 40 insert_exists
    // conflicts on each side.
    await a.query(`INSERT INTO app.kv SELECT g, 'a' FROM generate_series(1, 40) g`);
    await b.query(`INSERT INTO app.kv SELECT g, 'b' FROM generate_series(1, 40) g`);
    rep = startReplicator(config, { logger });
    const pruned = async (node: string): Promise<number> => {
      const m = await rep?.metrics.registry
        .getSingleMetric('pgfleet_mm_conflict_records_pruned_total')
        ?.get();
      return m?.values.find((v) => v.labels.node === node)?.value ?? 0;
    };
    for (const [name, node] of [
      ['a', a],
      ['b', b],
    ] as const) {
      const edge = name === 'a' ? 'b_a' : 'a_b';
      await eventually(
        `edge ${edge} reported 40 conflicts and ${name} kept 15 records`,
        async () => ({
          reported: rep?.status().edges.find((e) => e.edge === edge)?.conflicts,
          kept: (await node.query('SELECT count(*)::int AS n FROM pgfleet.conflicts'))[0]?.n as number,
          pruned: await pruned(name),
        }),
        (s) => s.reported === 40 && s.kept <= 15 && s.kept + s.pruned === 40,
        { timeoutMs: 30_000, intervalMs: 100 },
      );
      // The newest records are the ones kept.
      const left = await node.query('SELECT (max(key->>$1))::int AS k FROM pgfleet.conflicts', ['id']);
      expect(left[0]?.k).toBe(40);
    }
    expect(await a.query('SELECT count(*)::int AS n FROM app.kv')).toEqual(
      await b.query('SELECT count(*)::int AS n FROM app.kv'),
    );
    // status counts each edge's records: one scan per node, split by edge (a record of
    // another edge into a is not b_a's). The replicator stops first: it would prune that record's
    // predecessor meanwhile.
    await rep.stop();
    rep = undefined;
    await a.query(
      `INSERT INTO pgfleet.conflicts (edge, source_node, target_node, table_schema, table_name, kind, policy, resolution,
                                      reason, remote_commit_ts, remote_commit_lsn, remote_xid)
       VALUES ('x_a', 'x', 'a', 'app', 'kv', 'update_missing', 'last_update_wins', 'skip', 'no local row', now(), '0/1', 1)`,
    );
    const onA = (await a.query('SELECT count(*)::int AS n FROM pgfleet.conflicts'))[0]?.n as number;
    const onB = (await b.query('SELECT count(*)::int AS n FROM pgfleet.conflicts'))[0]?.n as number;
    const st = await meshStatus(config);
    expect(st.map((s) => [s.edge, s.conflicts, s.error])).toEqual([
      ['a_b', onB, null],
      ['b_a', onA - 1, null],
    ]);
  });
});
