import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '@pgfleet/connection';
import { eventually, Sandbox, type SandboxNode } from '@pgfleet/sandbox';
import pg from 'pg';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initMesh } from './init/init.js';
import { meshConfig } from './membership/pg-test-support.js';
import { type ReplicatorHandle, startReplicator } from './replicator.js';

const logger = pino({ level: process.env.PGFLEET_TEST_LOG ?? 'silent' });

const waitFor = <T>(what: string, fn: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 30_000) =>
  eventually(what, fn, ok, { timeoutMs, intervalMs: 100 });

const DDL = `CREATE SCHEMA app;
  CREATE TABLE app.big (id int PRIMARY KEY, part text NOT NULL, pad text, n int NOT NULL DEFAULT 0);
  CREATE TABLE app.small (id int PRIMARY KEY, note text);`;

/** Rows of app.big as one text, in key order: equal on both nodes once they converged. */
const contents = (n: SandboxNode) =>
  n
    .query<{ h: string | null; c: number }>(
      `SELECT md5(string_agg(id || ':' || part || ':' || coalesce(pad, '') || ':' || n, ',' ORDER BY id)) AS h,
              count(*)::int AS c FROM app.big`,
    )
    .then((r) => r[0] as { h: string | null; c: number });

/** Streamed transactions the source's slot for the edge to `target` sent (pg_stat_replication_slots). */
const streamedBy = async (source: SandboxNode) => {
  const r = await source.query<{ n: string }>(
    `SELECT coalesce(sum(stream_txns), 0)::text AS n FROM pg_stat_replication_slots`,
  );
  return Number(r[0]?.n ?? 0);
};

describe('large transactions streamed while in progress (protocol 2)', () => {
  let sb: Sandbox;
  let a: SandboxNode;
  let b: SandboxNode;
  let rep: ReplicatorHandle;
  let spoolDir: string;

  beforeAll(async () => {
    sb = await Sandbox.create();
    [a, b] = (await sb.startLogicalNodes(['a', 'b'])) as [SandboxNode, SandboxNode];
    for (const n of [a, b]) {
      await n.query(DDL);
      // The smallest setting: every transaction past 64 kB of changes streams.
      await n.query(`ALTER SYSTEM SET logical_decoding_work_mem = '64kB'`);
      await n.query('SELECT pg_reload_conf()');
    }
    spoolDir = mkdtempSync(join(tmpdir(), 'pgfleet-streaming-test-'));
    await initMesh(meshConfig([a, b]), { logger });
    rep = startReplicator(meshConfig([a, b], { streaming: 'on', spoolDirectory: spoolDir }), { logger });
  });

  afterAll(async () => {
    await rep?.stop();
    await sb?.destroy();
    if (spoolDir) rmSync(spoolDir, { recursive: true, force: true });
  });

  it('applies a streamed transaction whole at its commit, without its rolled-back savepoints, after what committed while it streamed', async () => {
    const before = await streamedBy(a);
    const big = new pg.Client({ connectionString: a.uri() });
    await big.connect();
    try {
      await big.query('BEGIN');
      await big.query(
        `INSERT INTO app.big SELECT g, 'top', repeat('x', 200) FROM generate_series(1, 2000) g`,
      );
      await big.query('SAVEPOINT s1');
      await big.query(
        `INSERT INTO app.big SELECT g, 'rolled back', repeat('r', 200) FROM generate_series(2001, 3000) g`,
      );
      await big.query('SAVEPOINT s2');
      await big.query(`UPDATE app.big SET part = 'rolled back too' WHERE id <= 500`);
      await big.query('RELEASE SAVEPOINT s2');
      await big.query('ROLLBACK TO SAVEPOINT s1');
      await big.query('SAVEPOINT s3');
      await big.query(
        `INSERT INTO app.big SELECT g, 'kept savepoint', repeat('k', 200) FROM generate_series(3001, 4000) g`,
      );
      await big.query('RELEASE SAVEPOINT s3');
      // Commits on the source while the large transaction is open: it must be applied first.
      await a.query(`INSERT INTO app.small VALUES (1, 'committed meanwhile')`);
      await big.query(`UPDATE app.big SET n = n + 1 WHERE id % 3 = 0`);
      await big.query(`DELETE FROM app.big WHERE id % 7 = 0`);
      await big.query('COMMIT');
    } finally {
      await big.end();
    }
    const want = await contents(a);
    expect(want.c).toBe(2000 + 1000 - Math.floor(2000 / 7) - (Math.floor(4000 / 7) - Math.floor(3000 / 7)));
    await waitFor(
      'b has the streamed transaction',
      () => contents(b),
      (r) => r.h === want.h,
    );
    expect(await b.query(`SELECT count(*)::int AS n FROM app.big WHERE part LIKE 'rolled back%'`)).toEqual([
      { n: 0 },
    ]);
    expect(await b.query('SELECT note FROM app.small')).toEqual([{ note: 'committed meanwhile' }]);
    // The small transaction was applied before the large one on b too (a smaller local xid).
    const order = await b.query<{ small_first: boolean }>(
      `SELECT s.xmin::text::bigint < g.xmin::text::bigint AS small_first
         FROM app.small s, app.big g WHERE s.id = 1 AND g.id = 1`,
    );
    expect(order).toEqual([{ small_first: true }]);
    await waitFor(
      'a counted the streamed transaction',
      () => streamedBy(a),
      (n) => n > before,
    );
  });

  it('applies nothing of a streamed transaction that aborts, and leaves no spool file behind', async () => {
    const before = await streamedBy(b);
    const wantA = await contents(a);
    await b
      .query(`
      DO $$ BEGIN
        INSERT INTO app.big SELECT g, 'aborted', repeat('a', 300) FROM generate_series(100001, 103000) g;
        RAISE EXCEPTION 'abort on purpose';
      END $$`)
      .catch(() => {});
    // A transaction after it, so the edge b->a is known to have passed the aborted one.
    await b.query(`INSERT INTO app.small VALUES (2, 'after the abort')`);
    await waitFor(
      'marker on a',
      () => a.query('SELECT 1 FROM app.small WHERE id = 2'),
      (r) => r.length === 1,
    );
    expect(await contents(a)).toEqual(wantA);
    await waitFor(
      'b counted the streamed transaction',
      () => streamedBy(b),
      (n) => n > before,
    );
    const sessions = readdirSync(spoolDir).filter((d) => d.startsWith('pgfleet-spool-'));
    for (const d of sessions) expect(readdirSync(join(spoolDir, d))).toEqual([]);
  });

  it('converges both ways when both nodes stream large transactions at once', async () => {
    await Promise.all([
      a.query(`UPDATE app.big SET pad = repeat('A', 250), n = n + 10 WHERE id <= 2000`),
      b.query(
        `INSERT INTO app.big SELECT g, 'from b', repeat('b', 250) FROM generate_series(200001, 202000) g`,
      ),
    ]);
    await waitFor(
      'a and b equal',
      async () => [await contents(a), await contents(b)] as const,
      ([x, y]) => x.h === y.h && x.c === y.c,
    );
    expect((await contents(a)).c).toBeGreaterThan(4000);
  });

  it('streams a transaction again from its start after the stream broke in the middle of it, applying it once', async () => {
    const big = new pg.Client({ connectionString: a.uri() });
    await big.connect();
    try {
      const before = await streamedBy(a);
      await big.query('BEGIN');
      await big.query(
        `INSERT INTO app.big SELECT g, 'across a break', repeat('c', 200) FROM generate_series(300001, 308000) g`,
      );
      // Part of it has reached the replicator's spool...
      await waitFor(
        'a streamed part of it',
        () => streamedBy(a),
        (n) => n > before,
      );
      const spooled = () =>
        readdirSync(spoolDir)
          .filter((d) => d.startsWith('pgfleet-spool-'))
          .flatMap((d) => readdirSync(join(spoolDir, d)));
      await waitFor(
        'a spool file on the replicator',
        async () => spooled(),
        (f) => f.length > 0,
      );
      const edge = rep.status().edges.find((e) => e.edge === 'a_b');
      expect(edge?.streamedInProgress).toBe(1);
      expect(edge?.spooledBytes).toBeGreaterThan(1 << 20);
      // ...when the source's walsender for the edge goes away.
      const killed = await a.query<{ n: number }>(
        `SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_replication WHERE application_name = 'pgfleet-mm:a_b:stream'`,
      );
      expect(killed).toEqual([{ n: 1 }]);
      await big.query(`UPDATE app.big SET n = n + 100 WHERE part = 'across a break'`);
      await big.query('COMMIT');
    } finally {
      await big.end();
    }
    const want = await contents(a);
    await waitFor(
      'b equal to a after the break',
      () => contents(b),
      (r) => r.h === want.h,
    );
    expect(
      await b.query(
        `SELECT count(*)::int AS c, min(n) AS lo, max(n) AS hi FROM app.big WHERE part = 'across a break'`,
      ),
    ).toEqual([{ c: 8000, lo: 100, hi: 100 }]);
  });

  it('refuses to start with a spool directory it cannot use, naming the key', () => {
    const missing = join(spoolDir, 'does-not-exist');
    expect(existsSync(missing)).toBe(false);
    const bad = meshConfig([a, b], { streaming: 'on', spoolDirectory: missing });
    let err: unknown;
    try {
      startReplicator(bad, { logger });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).message).toContain('apply.spoolDirectory');
    expect((err as ConfigError).message).toContain(missing);
    // Off (the default), it does not look at the directory at all.
    const off = meshConfig([a, b], { spoolDirectory: missing });
    const r = startReplicator(off, { logger, edges: [] });
    return r.stop();
  });
});
