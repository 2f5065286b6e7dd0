import { eventually, Sandbox, type SandboxNode } from '@pgfleet/sandbox';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig } from './config.js';
import { InitError, initMesh } from './init/init.js';
import { type ReplicatorHandle, startReplicator } from './replicator.js';

const logger = pino({ level: process.env.PGFLEET_TEST_LOG ?? 'silent' });

/** Polls with the sandbox's eventually(), 100 ms apart, 20 s by default. */
const waitFor = <T>(what: string, fn: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 20_000) =>
  eventually(what, fn, ok, { timeoutMs, intervalMs: 100 });

describe('init and apply behaviour', () => {
  let sb: Sandbox;
  let a: SandboxNode;
  let b: SandboxNode;
  let rep: ReplicatorHandle | undefined;

  beforeAll(async () => {
    sb = await Sandbox.create();
    [a, b] = (await Promise.all([
      sb.startNode('a', { logical: true }),
      sb.startNode('b', { logical: true }),
    ])) as [SandboxNode, SandboxNode];
  });
  afterAll(async () => {
    await rep?.stop();
    await sb?.destroy();
  });

  it('init reports every problem with node and table, and creates nothing', async () => {
    await a.query(
      'CREATE SCHEMA bad; CREATE TABLE bad.nokey (v text); CREATE TABLE bad.typed (id int PRIMARY KEY, v int)',
    );
    await b.query(
      'CREATE SCHEMA bad; CREATE TABLE bad.typed (id int PRIMARY KEY, v text); CREATE TABLE bad.later (id int PRIMARY KEY DEFERRABLE INITIALLY DEFERRED, v text)',
    );
    const config = resolveConfig({
      nodes: [
        { name: 'a', conninfo: a.conninfo() },
        { name: 'b', conninfo: b.conninfo() },
        { name: 'c', conninfo: 'host=127.0.0.1 port=1 user=x password=topsecret dbname=x connect_timeout=2' },
      ],
      tables: ['bad.*'],
      http: { listen: false },
    });
    const err = await initMesh(config).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InitError);
    const problems = (err as InitError).problems;
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ node: 'c' }),
        expect.objectContaining({
          node: 'a',
          table: 'bad.nokey',
          message: expect.stringContaining('no primary key'),
        }),
        expect.objectContaining({
          node: 'b',
          table: 'bad.nokey',
          message: 'table does not exist on this node',
        }),
        expect.objectContaining({
          node: 'b',
          table: 'bad.typed',
          message: expect.stringContaining('"v" is text, but integer on a'),
        }),
        expect.objectContaining({
          node: 'b',
          table: 'bad.later',
          message: expect.stringMatching(/^DEFERRABLE constraint "later_pkey": .* without DEFERRABLE$/),
        }),
      ]),
    );
    expect((err as Error).message).not.toContain('topsecret');
    for (const n of [a, b]) {
      expect(await n.query(`SELECT count(*)::int AS n FROM pg_replication_slots`)).toEqual([{ n: 0 }]);
      expect(await n.query(`SELECT to_regnamespace('pgfleet') IS NULL AS none`)).toEqual([{ none: true }]);
    }
  });

  it('init rejects an invalid row filter with the server reason before creating anything', async () => {
    for (const n of [a, b])
      await n.query(
        'CREATE SCHEMA app; CREATE TABLE app.t (id int PRIMARY KEY, region text, big text, extra int)',
      );
    const config = resolveConfig({
      nodes: [
        { name: 'a', conninfo: a.conninfo() },
        { name: 'b', conninfo: b.conninfo() },
      ],
      tables: [{ name: 'app.t', rowFilter: 'region = random()::text' }],
      http: { listen: false },
    });
    const err = (await initMesh(config).catch((e: unknown) => e)) as InitError;
    expect(err).toBeInstanceOf(InitError);
    expect(err.problems[0]).toMatchObject({
      table: 'app.t',
      message: expect.stringMatching(/random|function|not allowed/i),
    });
    expect(await a.query(`SELECT count(*)::int AS n FROM pg_publication`)).toEqual([{ n: 0 }]);
  });

  it('init twice changes nothing; TOAST, TRUNCATE and a schema mismatch behave as documented', async () => {
    const config = resolveConfig({
      nodes: [
        { name: 'a', conninfo: a.conninfo() },
        { name: 'b', conninfo: b.conninfo() },
      ],
      tables: ['app.t'],
      http: { listen: false },
      statusIntervalMs: 200,
      reconnect: { baseDelayMs: 100, maxDelayMs: 500 },
    });
    const first = await initMesh(config);
    expect(first.created.slots).toHaveLength(2);
    const second = await initMesh(config);
    expect(second.created).toEqual({ publications: [], slots: [], origins: [] });

    rep = startReplicator(config, { logger });
    // TOAST: a 1 MB value stays intact downstream when another column is updated.
    await a.query(`INSERT INTO app.t VALUES (1, 'eu', repeat(md5('x'), 32768), 0)`);
    await waitFor(
      'toast row on b',
      () => b.query('SELECT length(big) AS n FROM app.t WHERE id = 1'),
      (r) => r[0]?.n === 1048576,
    );
    await a.query('UPDATE app.t SET extra = 1 WHERE id = 1');
    await waitFor(
      'update on b',
      () => b.query('SELECT extra FROM app.t WHERE id = 1'),
      (r) => r[0]?.extra === 1,
    );
    expect(await b.query('SELECT md5(big) AS h FROM app.t WHERE id = 1')).toEqual(
      await a.query('SELECT md5(big) AS h FROM app.t WHERE id = 1'),
    );

    // TRUNCATE on b empties a.
    await a.query(`INSERT INTO app.t (id) SELECT g FROM generate_series(2, 50) g`);
    await waitFor(
      'rows on b',
      () => b.query('SELECT count(*)::int AS n FROM app.t'),
      (r) => r[0]?.n === 50,
    );
    await b.query('TRUNCATE app.t');
    await waitFor(
      'truncate on a',
      () => a.query('SELECT count(*)::int AS n FROM app.t'),
      (r) => r[0]?.n === 0,
    );

    // Column added on a only: edge a->b pauses naming table and column, nothing partial.
    await a.query('ALTER TABLE app.t ADD COLUMN added int');
    await a.query(`INSERT INTO app.t (id, added) VALUES (100, 7)`);
    const paused = await waitFor(
      'edge a_b paused',
      async () => rep?.status().edges.find((e) => e.edge === 'a_b'),
      (e) => e?.state === 'paused',
    );
    expect(paused?.lastError?.message).toMatch(/column "added" of app\.t/);
    expect(await b.query('SELECT count(*)::int AS n FROM app.t')).toEqual([{ n: 0 }]);
    await b.query('ALTER TABLE app.t ADD COLUMN added int');
    await waitFor(
      'resumed row on b',
      () => b.query('SELECT added FROM app.t WHERE id = 100'),
      (r) => r[0]?.added === 7,
    );
    await waitFor(
      'edge streaming',
      async () => rep?.status().edges.find((e) => e.edge === 'a_b')?.state,
      (s) => s === 'streaming',
    );
  });
});
