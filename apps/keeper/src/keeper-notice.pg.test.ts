import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, Sandbox, type SandboxNode } from '@pgfleet/sandbox';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from './config.js';
import { type KeeperHandle, startKeeper } from './keeper.js';

const major = process.env.PGFLEET_PG_VERSION ? Number(process.env.PGFLEET_PG_VERSION) : undefined;
const TOKEN = 'notice-test-token';
const SYNC = 'FIRST 1 (b)';
/** The standby keeper's period: far longer than the test, so only a notice can wake it. */
const SLOW_INTERVAL = 60_000;
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
    await sleep(20);
  }
  throw new Error(`timed out waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
}

/**
 * Found by the benchmark: a standby keeper whose last probe saw synchronous_standby_names = ''
 * (taken just before the primary's keeper restored sync) stayed 'degraded' after the
 * 'restored' notice, so a primary dying within the next interval was not failed over.
 */
describe("standby keeper and the primary keeper's 'restored' notice", () => {
  let sb: Sandbox;
  let a: SandboxNode;
  let b: SandboxNode;
  let ka: KeeperHandle | undefined;
  let kb: KeeperHandle | undefined;
  let portA: number;
  let portB: number;

  beforeAll(async () => {
    sb = await Sandbox.create({ name: 'keeper-notice', major });
    a = await sb.startNode('a'); // starts asynchronous: synchronous_standby_names = ''
    b = await sb.createStandby('b', a);
    [portA, portB] = [await freePort(), await freePort()];
  });

  afterAll(async () => {
    await Promise.all([ka?.stop(), kb?.stop()]);
    await sb?.destroy();
  });

  it('re-probes at once on the notice, sees itself synchronous, and can fail over right after', async () => {
    kb = await startKeeper(
      parseConfig({
        node: { name: 'b', conninfo: b.conninfo() },
        peer: {
          name: 'a',
          conninfo: a.conninfo({ from: 'keeper-b' }),
          keeperUrl: `http://127.0.0.1:${portA}`,
        },
        interval: `${SLOW_INTERVAL}ms`,
        connectTimeout: '250ms',
        failures: 3,
        syncStandbyNames: SYNC,
        http: { listen: `127.0.0.1:${portB}`, token: TOKEN },
      }),
      { logger: logger.child({ test: 'kb' }) },
    );
    // Its first (and, without notices, only) probe sees the primary asynchronous.
    await until('kb saw the primary degraded', () => kb?.status().sync.observation === 'degraded');

    ka = await startKeeper(
      parseConfig({
        node: { name: 'a', conninfo: a.conninfo() },
        peer: {
          name: 'b',
          conninfo: b.conninfo({ from: 'keeper-a' }),
          keeperUrl: `http://127.0.0.1:${portB}`,
        },
        interval: '300ms',
        connectTimeout: '250ms',
        failures: 3,
        syncStandbyNames: SYNC,
        http: { listen: `127.0.0.1:${portA}`, token: TOKEN },
      }),
      { logger: logger.child({ test: 'ka' }) },
    );
    await until('ka restored sync', () => ka?.status().counters.restores === 1);
    const restoredAt = Date.now();
    await until('kb sees itself synchronous', () => kb?.status().sync.observation === 'sync', 5000);
    expect(Date.now() - restoredAt).toBeLessThan(2000);

    // The primary dies right after: the fast path promotes b, no interval-long wait for a probe.
    const killedAt = Date.now();
    await a.kill();
    await until('kb promoted b', () => kb?.status().role === 'primary', 10_000);
    expect(Date.now() - killedAt).toBeLessThan(3000);
    expect(kb?.status().counters.promotions).toBe(1);
  });
});
