import { setTimeout as sleep } from 'node:timers/promises';
import type { Sandbox, SandboxNode } from '@pgfleet/sandbox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KeeperHandle } from './keeper.js';
import {
  CONNECT_TIMEOUT,
  createPair,
  FAILURES,
  INTERVAL,
  type KeeperPair,
  pairConfig,
  startTestKeeper,
  teardown,
  timing,
} from './test-support/keeper-pair.js';
import { until } from './test-support/until.js';

/**
 * An asynchronous pair without the fast path (no peer.keeperUrl): the standby's keeper has
 * only its own probes to go by.
 */
describe('standby keeper detection on real servers (async pair, no fast path)', () => {
  let pair: KeeperPair;
  let sb: Sandbox;
  let a: SandboxNode;
  let b: SandboxNode;
  let ka: KeeperHandle | undefined;
  let kb: KeeperHandle;
  let kbStartedAt: number;

  const opts = {
    common: {
      ...timing,
      maxLagOnFailover: '1MiB',
      startupGrace: '3s',
      http: { listen: '127.0.0.1:0' },
    },
  };

  beforeAll(async () => {
    pair = await createPair({
      name: 'keeper-detect',
      setupSql: 'CREATE TABLE filler (id int PRIMARY KEY, pad text)',
    });
    ({ sb, a, b } = pair);
  });

  afterAll(() => teardown(sb, [ka, kb]));

  it('does not promote a standby whose primary was never seen before startupGrace', async () => {
    await a.stop('fast');
    kbStartedAt = Date.now();
    kb = await startTestKeeper(pairConfig(pair, 'b', opts), 'kb');
    const blocked = await until('kb blocked by the startup grace', () =>
      kb.status().decision?.kind === 'blocked' ? kb.status().decision : undefined,
    );
    expect(blocked?.reason).toMatch(/primary never seen since start \(startupGrace 3s/);
    expect(kb.status().role).toBe('standby');
    await a.start();
    await until('kb sees its primary', () => kb.status().decision?.reason === 'primary reachable');
    await sleep(Math.max(0, kbStartedAt + 3000 + INTERVAL * 2 - Date.now()));
    expect(kb.status()).toMatchObject({ role: 'standby', counters: { promotions: 0 } });
    await until('b streams again', () => kb.status().streaming);
  });

  it('refuses to promote while replay lag exceeds maxLagOnFailover, and says why', async () => {
    ka = await startTestKeeper(pairConfig(pair, 'a', opts), 'ka');
    await until('ka sees itself primary', () => ka?.status().role === 'primary');
    await b.query('SELECT pg_wal_replay_pause()');
    await a.query(`INSERT INTO filler SELECT g, repeat('x', 1000) FROM generate_series(1, 3000) g`);
    await until('kb measures the lag', () => (kb.status().lagBytes ?? 0) > 1024 * 1024);
    a.pause();
    const frozenAt = Date.now();
    const blocked = await until('kb blocked by the lag guard', () =>
      kb.status().decision?.kind === 'blocked' ? kb.status().decision : undefined,
    );
    expect(blocked?.reason).toMatch(/replay lag [\d.]+ MiB > maxLagOnFailover 1.0 MiB/);
    expect(blocked?.reason).toMatch(/replay is paused/);
    // Probes of the frozen primary cost connectTimeout, never a TCP timeout.
    expect(kb.status().peer.lastProbeLatencyMs).toBeLessThanOrEqual(CONNECT_TIMEOUT + 150);
    await sleep(Math.max(0, frozenAt + INTERVAL * FAILURES + 1000 - Date.now()));
    expect(kb.status()).toMatchObject({ role: 'standby', counters: { promotions: 0 } });
    expect(kb.status().peer.consecutiveFailures).toBeGreaterThanOrEqual(FAILURES);
  });

  it('promotes once the lag is gone while the primary stays frozen', async () => {
    await b.query('SELECT pg_wal_replay_resume()');
    const resumedAt = Date.now();
    await until('kb promotes b', () => kb.status().role === 'primary', 10_000);
    expect(Date.now() - resumedAt).toBeLessThan(INTERVAL * 2 + 2000);
    expect(kb.status().counters.promotions).toBe(1);
    const [row] = await b.query<{ n: string }>('SELECT count(*) AS n FROM filler');
    expect(Number(row?.n)).toBe(3000);
    await b.query(`INSERT INTO filler VALUES (5000, 'after failover')`);
  });

  it('the frozen old primary was stopped by its own keeper: nothing of it writes after the thaw', async () => {
    // Frozen for longer than fenceAfter, a could not be fenced with SQL: its keeper killed it
    // (SIGKILL works on stopped processes) long before the standby could promote.
    expect(ka?.status().counters.serverStops).toBe(1);
    a.resume();
    expect(a.isRunning).toBe(false);
    await expect(
      a.query(`INSERT INTO filler VALUES (6000, 'split brain')`, [], { timeoutMs: 2000 }),
    ).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    expect(ka?.status().counters.promotions).toBe(0);
    expect(ka?.status().writable).toBe(false);
  });
});
