import { eventually, Sandbox, type SandboxNode } from '@pgfleet/sandbox';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ResolvedConfig, resolveConfig } from './config.js';
import { initMesh } from './init/init.js';
import { type ReplicatorHandle, startReplicator } from './replicator.js';

const logger = pino({ level: process.env.PGFLEET_TEST_LOG ?? 'silent' });

/** Polls with the sandbox's eventually(), 100 ms apart, 20 s by default. */
const waitFor = <T>(what: string, fn: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 20_000) =>
  eventually(what, fn, ok, { timeoutMs, intervalMs: 100 });

const DDL = `CREATE SCHEMA app;
  CREATE TABLE app.items (id int PRIMARY KEY, name text, qty numeric(40,20), big int8, at timestamptz, doc json, tags text[], blob bytea, note text);`;

describe('replicator on a 2-node mesh', () => {
  let sb: Sandbox;
  let a: SandboxNode;
  let b: SandboxNode;
  let config: ResolvedConfig;
  let rep: ReplicatorHandle;

  beforeAll(async () => {
    sb = await Sandbox.create();
    [a, b] = (await Promise.all([
      sb.startNode('a', { logical: true }),
      sb.startNode('b', { logical: true }),
    ])) as [SandboxNode, SandboxNode];
    for (const n of [a, b]) await n.query(DDL);
    config = resolveConfig({
      nodes: [
        { name: 'a', conninfo: a.conninfo() },
        { name: 'b', conninfo: b.conninfo() },
      ],
      tables: ['app.*'],
      http: { listen: false },
      statusIntervalMs: 200,
    });
    await initMesh(config, { logger });
    rep = startReplicator(config, { logger });
  });

  afterAll(async () => {
    await rep?.stop();
    await sb?.destroy();
  });

  it('applies an insert on a exactly once on b with every value kept as text, and never echoes it back', async () => {
    await a.query(
      `INSERT INTO app.items VALUES (1, 'x', '12345678901234567890.12345678901234567890', 9007199254740993, '2024-01-02 03:04:05.123456+00', '{ "a" :  1 }', ARRAY['q"uote', NULL, 'b\\c'], '\\x00ff', '')`,
    );
    const rows = await waitFor(
      'row on b',
      () =>
        b.query(
          'SELECT qty::text, big::text, at::text, doc::text, tags::text, blob::text, note FROM app.items WHERE id = 1',
        ),
      (r) => r.length === 1,
    );
    const src = await a.query(
      'SELECT qty::text, big::text, at::text, doc::text, tags::text, blob::text, note FROM app.items WHERE id = 1',
    );
    expect(rows).toEqual(src);
    expect(rows[0]?.note).toBe('');
    // Let the edge b->a see the applied transaction and skip it.
    await new Promise((r) => setTimeout(r, 1000));
    expect(await a.query('SELECT count(*)::int AS n FROM app.items')).toEqual([{ n: 1 }]);
    expect(await b.query('SELECT count(*)::int AS n FROM app.items')).toEqual([{ n: 1 }]);
  });

  it('replicates an update and a delete made on b back to a', async () => {
    await b.query(`UPDATE app.items SET name = 'y' WHERE id = 1`);
    await waitFor(
      'update on a',
      () => a.query('SELECT name FROM app.items WHERE id = 1'),
      (r) => r[0]?.name === 'y',
    );
    await b.query(`INSERT INTO app.items (id, name) SELECT g, 'n' || g FROM generate_series(2, 500) g`);
    await waitFor(
      'bulk insert on a',
      () => a.query('SELECT count(*)::int AS n FROM app.items'),
      (r) => r[0]?.n === 500,
    );
    await a.query('DELETE FROM app.items WHERE id > 250');
    await waitFor(
      'delete on b',
      () => b.query('SELECT count(*)::int AS n FROM app.items'),
      (r) => r[0]?.n === 250,
    );
  });

  it('records a conflict when both nodes insert the same key and converges to the later commit', async () => {
    // Stop replication so both inserts happen concurrently from the mesh's point of view.
    await rep.stop();
    await a.query(`INSERT INTO app.items (id, name) VALUES (1000, 'from-a')`);
    await b.query(`INSERT INTO app.items (id, name) VALUES (1000, 'from-b')`);
    rep = startReplicator(config, { logger });
    await waitFor(
      'convergence',
      async () => [
        await a.query('SELECT name FROM app.items WHERE id = 1000'),
        await b.query('SELECT name FROM app.items WHERE id = 1000'),
      ],
      ([x, y]) => x?.[0]?.name === 'from-b' && y?.[0]?.name === 'from-b',
    );
    const onA = await a.query(
      `SELECT edge, kind, resolution, remote_row->>'name' AS remote FROM pgfleet.conflicts WHERE key->>'id' = '1000'`,
    );
    expect(onA).toEqual([{ edge: 'b_a', kind: 'insert_exists', resolution: 'apply', remote: 'from-b' }]);
    const onB = await b.query(
      `SELECT edge, kind, resolution, local_row->>'name' AS local FROM pgfleet.conflicts WHERE key->>'id' = '1000'`,
    );
    expect(onB).toEqual([{ edge: 'a_b', kind: 'insert_exists', resolution: 'skip', local: 'from-b' }]);
  });
});
