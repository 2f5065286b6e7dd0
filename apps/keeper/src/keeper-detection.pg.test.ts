import { setTimeout as sleep } from 'node:timers/promises';
import { Sandbox, type SandboxNode } from '@pgfleet/sandbox';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from './config.js';
import { type KeeperHandle, startKeeper } from './keeper.js';

const major = process.env.PGFLEET_PG_VERSION ? Number(process.env.PGFLEET_PG_VERSION) : undefined;
const INTERVAL = 300;
const FAILURES = 3;
const CONNECT_TIMEOUT = 250;
const logger = pino({ level: process.env.KEEPER_TEST_LOG ? 'debug' : 'silent' });

async function until<T>(
  what: string,
  fn: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v as T;
    } catch (err) {
      last = err;
    }
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
}

/**
 * An asynchronous pair without the fast path (no peer.keeperUrl): the standby's keeper has
 * only its own probes to go by.
 */
describe('standby keeper detection on real servers (async pair, no fast path)', () => {
  let sb: Sandbox;
  let a: SandboxNode;
  let b: SandboxNode;
  let ka: KeeperHandle | undefined;
  let kb: KeeperHandle;
  let kbStartedAt: number;

  const common = {
    interval: `${INTERVAL}ms`,
    failures: FAILURES,
    connectTimeout: `${CONNECT_TIMEOUT}ms`,
    maxLagOnFailover: '1MiB',
    startupGrace: '3s',
    http: { listen: '127.0.0.1:0' },
  };

  beforeAll(async () => {
    sb = await Sandbox.create({ name: 'keeper-detect', major });
    a = await sb.startNode('a');
    await a.query('CREATE TABLE filler (id int PRIMARY KEY, pad text)');
    b = await sb.createStandby('b', a);
  });

  afterAll(async () => {
    await Promise.all([ka?.stop(), kb?.stop()]);
    await sb?.destroy();
  });

  it('does not promote a standby whose primary was never seen before startupGrace', async () => {
    await a.stop('fast');
    kbStartedAt = Date.now();
    kb = await startKeeper(
      parseConfig({
        ...common,
        node: { name: 'b', conninfo: b.conninfo() },
        peer: { name: 'a', conninfo: a.conninfo({ from: 'keeper-b' }) },
      }),
      { logger: logger.child({ test: 'kb' }) },
    );
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
    ka = await startKeeper(
      parseConfig({
        ...common,
        node: { name: 'a', conninfo: a.conninfo() },
        peer: { name: 'b', conninfo: b.conninfo({ from: 'keeper-a' }) },
      }),
      { logger: logger.child({ test: 'ka' }) },
    );
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

  it('fences the thawed old primary: the peer runs on a newer timeline', async () => {
    a.resume();
    await until('ka fences a', () => ka?.status().fenced, 10_000);
    await expect(
      a.query(`INSERT INTO filler VALUES (6000, 'split brain')`, [], { timeoutMs: 5000 }),
    ).rejects.toMatchObject({
      code: '25006',
    });
    expect(ka?.status().counters.fences).toBe(1);
    expect(ka?.status().counters.promotions).toBe(0);
  });
});
