import type { Sandbox, SandboxNode } from '@pgfleet/sandbox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KeeperHandle } from './keeper.js';
import {
  createPair,
  type KeeperPair,
  keeperPorts,
  pairConfig,
  type Side,
  startTestKeeper,
  teardown,
} from './test-support/keeper-pair.js';
import { pollEvery } from './test-support/until.js';

const TOKEN = 'notice-test-token';
const SYNC = 'FIRST 1 (b)';
/** The standby keeper's period: far longer than the test, so only a notice can wake it. */
const SLOW_INTERVAL = 60_000;
const until = pollEvery(20);

/**
 * Found by the benchmark: a standby keeper whose last probe saw synchronous_standby_names = ''
 * (taken just before the primary's keeper restored sync) stayed 'degraded' after the
 * 'restored' notice, so a primary dying within the next interval was not failed over.
 */
describe("standby keeper and the primary keeper's 'restored' notice", () => {
  let pair: KeeperPair;
  let sb: Sandbox;
  let a: SandboxNode;
  let ka: KeeperHandle | undefined;
  let kb: KeeperHandle | undefined;
  let ports: Record<Side, number>;

  beforeAll(async () => {
    // a starts asynchronous: synchronous_standby_names = ''
    pair = await createPair({ name: 'keeper-notice' });
    ({ sb, a } = pair);
    ports = await keeperPorts();
  });

  afterAll(() => teardown(sb, [ka, kb]));

  it('re-probes at once on the notice, sees itself synchronous, and can fail over right after', async () => {
    const opts = {
      common: { connectTimeout: '250ms', failures: 3, syncStandbyNames: SYNC, http: { token: TOKEN } },
      ports,
      side: (side: Side) => ({ interval: side === 'a' ? '300ms' : `${SLOW_INTERVAL}ms` }),
    };
    kb = await startTestKeeper(pairConfig(pair, 'b', opts), 'kb');
    // Its first (and, without notices, only) probe sees the primary asynchronous.
    await until('kb saw the primary degraded', () => kb?.status().sync.observation === 'degraded');

    ka = await startTestKeeper(pairConfig(pair, 'a', opts), 'ka');
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
