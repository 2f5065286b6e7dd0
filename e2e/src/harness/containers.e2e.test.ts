import { probe } from '@pgfleet/connection';
import { freePort } from '@pgfleet/sandbox';
import pg from 'pg';
import { getContainerRuntimeClient } from 'testcontainers';
import { afterAll, describe, expect, it } from 'vitest';
import type { ContainerNode } from '../providers/container-node.js';
import { PostgresContainer } from '../providers/postgres-container.js';
import { createProvider, providerSettingsFromEnv } from '../providers/select-provider.js';
import type { ClusterNode } from '../providers/types.js';
import { eventually } from '../support/eventually.js';
import { suiteProvider } from '../support/suite-provider.js';

// What only the containers provider has to get right (the shared scenarios are in
// harness.e2e.test.ts). Runs in the containers phase; without a runtime the suite is reported
// as skipped, and its name carries the reason.
const suite = await suiteProvider({ choice: 'containers' });
const provider = suite.provider;

async function reach(conninfo: string, timeoutMs: number): Promise<string> {
  const res = await probe(conninfo, { timeoutMs });
  if (res.ok) return 'ok';
  return res.latencyMs >= timeoutMs - 50 ? 'timeout' : res.error.code;
}

describe.skipIf(!provider)(`containers provider (${suite.label})`, () => {
  let p: ClusterNode;
  let s: ClusterNode;

  afterAll(async () => {
    await provider?.destroy();
  });

  it('E2E_PROVIDER=auto picks containers when a runtime answers', async () => {
    const auto = await createProvider({ ...providerSettingsFromEnv(), choice: 'auto' }, () => {});
    try {
      expect(auto.kind).toBe('containers');
    } finally {
      await auto.destroy();
    }
  });

  it('runs a primary and a pg_basebackup standby that replays its writes, named in pg_stat_replication', async () => {
    p = await provider!.startPrimary('cp');
    await p.query('CREATE TABLE t (id int)');
    s = await provider!.startStandby('cs', p);
    await p.query('INSERT INTO t VALUES (1)');
    await eventually(
      'standby to replay the insert',
      () => s.query<{ n: string }>('SELECT count(*) AS n FROM t'),
      (r) => r[0]?.n === '1',
    );
    const [row] = await p.query<{ app: string; slot: string }>(
      `SELECT r.application_name AS app, s.slot_name AS slot
         FROM pg_stat_replication r JOIN pg_replication_slots s ON s.active_pid = r.pid`,
    );
    expect(row).toEqual({ app: 'cs', slot: 'cs' });
  });

  it('publishes ports on 127.0.0.1 only', async () => {
    for (const n of [p, s]) {
      const info = await (n as ContainerNode).container.inspect();
      const bindings = Object.values(info.HostConfig.PortBindings ?? {}).flat() as Array<{ HostIp: string }>;
      expect(bindings.length).toBeGreaterThan(0);
      for (const b of bindings) expect(b.HostIp).toBe('127.0.0.1');
    }
  });

  it('a primary stopped with immediate shutdown comes back at the same addresses and the standby streams again', async () => {
    await p.stop('immediate');
    expect(await reach(p.conninfo(), 1_000)).not.toBe('ok');
    await p.start();
    await p.query('INSERT INTO t VALUES (2)');
    await eventually(
      'standby to stream from the restarted primary',
      () => s.query<{ n: string }>('SELECT count(*) AS n FROM t'),
      (r) => r[0]?.n === '2',
      // Well under the ~30 s an ARP entry for the primary's old MAC would stall it.
      { timeoutMs: 10_000 },
    );
  });

  it('a killed node starts again with its data', async () => {
    await s.kill();
    expect(await reach(s.conninfo(), 1_000)).not.toBe('ok');
    await s.start();
    const [row] = await s.query<{ n: string }>('SELECT count(*) AS n FROM t');
    expect(row?.n).toBe('2');
  });

  it("the image keeps the official postgres image's contract: POSTGRES_USER/DB/PASSWORD, init scripts, -c settings", async () => {
    const image = providerSettingsFromEnv().image ?? `postgres:${provider!.major}`;
    const addr = { port: await freePort(), user: 'alice', password: 's3cret', database: 'app' };
    const c = await new PostgresContainer({
      image,
      name: `pgfleet-contract-${addr.port}`,
      hostPort: addr.port,
      addr,
      command: ['-c', 'work_mem=5MB'],
    })
      .withCopyContentToContainer([
        {
          content: 'CREATE TABLE from_init (v int); INSERT INTO from_init VALUES (7);',
          target: '/docker-entrypoint-initdb.d/1.sql',
        },
      ])
      .start();
    try {
      const client = new pg.Client({ host: '127.0.0.1', ...addr });
      await client.connect();
      try {
        const { rows } = await client.query(
          `SELECT current_setting('work_mem') AS wm, (SELECT v FROM from_init) AS v, current_user AS u, rolsuper AS su
             FROM pg_roles WHERE rolname = current_user`,
        );
        expect(rows[0]).toEqual({ wm: '5MB', v: 7, u: 'alice', su: true });
      } finally {
        await client.end().catch(() => {});
      }
      const wrong = new pg.Client({ host: '127.0.0.1', ...addr, password: 'wrong' });
      wrong.on('error', () => {});
      await expect(wrong.connect()).rejects.toMatchObject({ code: '28P01' });
    } finally {
      await c.stop();
    }
  });

  it('the image refuses to initialise without POSTGRES_PASSWORD, saying which variable to set', async () => {
    const image = providerSettingsFromEnv().image ?? `postgres:${provider!.major}`;
    const client = await getContainerRuntimeClient();
    const c = await client.container.create({ Image: image, HostConfig: { NetworkMode: 'none' } });
    try {
      await client.container.start(c);
      const exit = (await c.wait()) as { StatusCode: number };
      expect(exit.StatusCode).not.toBe(0);
      const logs = String(await c.logs({ stdout: true, stderr: true }));
      expect(logs).toMatch(/POSTGRES_PASSWORD/);
    } finally {
      await c.remove({ force: true, v: true });
    }
  });

  it('a partition between a process on this host and a node black-holes only that party', async () => {
    const viaApp = p.conninfo({ from: 'app' });
    expect(await reach(viaApp, 5_000)).toBe('ok');
    await provider!.partition('app', 'cp');
    expect(await reach(viaApp, 800)).toBe('timeout');
    expect(await reach(p.conninfo({ from: 'other' }), 5_000)).toBe('ok');
    expect(await reach(p.conninfo(), 5_000)).toBe('ok');
    await provider!.heal('app', 'cp');
    expect(await reach(viaApp, 5_000)).toBe('ok');
  });
});
