import { probe } from '@pgfleet/connection';
import { afterAll, describe, expect, it } from 'vitest';
import type { ContainerNode } from '../providers/container-node.js';
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
