import { setTimeout as sleep } from 'node:timers/promises';
import type { Sandbox, SandboxNode } from '@pgfleet/sandbox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KeeperConfig } from './config.js';
import type { KeeperHandle } from './keeper.js';
import { post } from './test-support/http.js';
import {
  createPair,
  FAILURES,
  INTERVAL,
  keeperPorts,
  pairConfig,
  startTestKeeper,
  teardown,
  timing,
} from './test-support/keeper-pair.js';
import { until } from './test-support/until.js';

const TOKEN = 'operations-test-token';
const SYNC = 'FIRST 1 (b)';

describe('keeper operations on real servers (blip, keeper restart, switchover)', () => {
  let sb: Sandbox;
  let a: SandboxNode;
  let b: SandboxNode;
  let ka: KeeperHandle;
  let kb: KeeperHandle;
  let configA: KeeperConfig;
  let configB: KeeperConfig;

  beforeAll(async () => {
    const pair = await createPair({ name: 'keeper-ops', setupSql: 'CREATE TABLE t (id int PRIMARY KEY)' });
    ({ sb, a, b } = pair);
    const opts = {
      // fenceAfter above the freeze below: a primary silent for fenceAfter is stopped by its keeper.
      common: {
        ...timing,
        fenceAfter: '800ms',
        syncStandbyNames: SYNC,
        startupGrace: '5s',
        http: { token: TOKEN },
      },
      ports: await keeperPorts(),
    };
    configA = pairConfig(pair, 'a', opts);
    configB = pairConfig(pair, 'b', opts);
    ka = await startTestKeeper(configA, 'ka');
    kb = await startTestKeeper(configB, 'kb');
    await until(
      'sync on and b synchronous',
      () => ka.status().sync.current === SYNC && kb.status().sync.observation === 'sync',
    );
  });

  afterAll(() => teardown(sb, [ka, kb]));

  it('rides out a primary freeze shorter than fenceAfter: no promotion, no degrade, no stop', async () => {
    let maxFailures = 0;
    const watch = setInterval(() => {
      maxFailures = Math.max(maxFailures, kb.status().peer.consecutiveFailures);
    }, 10);
    a.pause();
    await sleep(INTERVAL * 1.9); // every probe started during the freeze times out
    a.resume();
    await until('kb sees a again', () => kb.status().decision?.reason === 'primary reachable');
    await sleep(INTERVAL * FAILURES);
    clearInterval(watch);
    // The freeze was noticed, and the counter reset before reaching the threshold.
    expect(maxFailures).toBeGreaterThanOrEqual(1);
    expect(maxFailures).toBeLessThan(FAILURES);
    expect(kb.status()).toMatchObject({
      role: 'standby',
      counters: { promotions: 0 },
      peer: { consecutiveFailures: 0 },
    });
    expect(ka.status()).toMatchObject({ role: 'primary', writable: true, counters: { serverStops: 0 } });
    expect(ka.status()).toMatchObject({ role: 'primary', fenced: false, counters: { degrades: 0 } });
    await a.query('INSERT INTO t VALUES (1)');
  });

  it('a restarted keeper resumes its mode and takes no action', async () => {
    await Promise.all([ka.stop(), kb.stop()]);
    await a.query('INSERT INTO t VALUES (2)'); // PostgreSQL keeps serving without keepers
    ka = await startTestKeeper(configA, 'ka2');
    kb = await startTestKeeper(configB, 'kb2');
    await until(
      'both keepers settled',
      () => ka.status().decision !== null && kb.status().decision?.reason === 'primary reachable',
    );
    await sleep(INTERVAL * FAILURES);
    expect(ka.status()).toMatchObject({
      role: 'primary',
      // (kind only: on a loaded machine one probe may time out, which changes the reason)
      decision: { kind: 'none' },
      counters: { promotions: 0, degrades: 0, restores: 0, fences: 0 },
    });
    expect(kb.status()).toMatchObject({ role: 'standby', counters: { promotions: 0 } });
  });

  it('degrades when replay stalls on a live standby, which does not promote, and restores after', async () => {
    await b.query('SELECT pg_wal_replay_pause()');
    await a.query('INSERT INTO t SELECT generate_series(600, 700)');
    await until('a degrades', () => ka.status().sync.degraded, 10_000);
    expect(ka.status().counters.degrades).toBe(1);
    expect(ka.status().decision?.reason).toMatch(/replay paused on the standby|replay stalled/);
    // The degrade notice can arrive before b's keeper has read its own replay state.
    await until(
      'b sees the degrade and its paused replay',
      () => kb.status().sync.observation === 'degraded' && kb.status().replayPaused,
    );
    expect(kb.status()).toMatchObject({ role: 'standby', replayPaused: true, counters: { promotions: 0 } });
    await b.query('SELECT pg_wal_replay_resume()');
    await until(
      'a restores sync',
      () => ka.status().sync.current === SYNC && !ka.status().sync.degraded,
      10_000,
    );
    await until('b synchronous again', () => kb.status().sync.observation === 'sync');
    expect(ka.status().counters.restores).toBe(1);
  });

  it('refuses /switchover without the token and on the standby', async () => {
    expect((await post(`${ka.url}/switchover`)).status).toBe(401);
    const onStandby = await post(`${kb.url}/switchover`, TOKEN);
    expect(onStandby.status).toBe(409);
    expect(await onStandby.json()).toMatchObject({
      error: expect.stringMatching(/run the switchover on the primary/),
    });
  });

  it("rolls a switchover back when the standby's keeper cannot take it: the primary is unfenced and writes again", async () => {
    await kb.stop();
    const res = await post(`${ka.url}/switchover`, TOKEN);
    expect(res.status).toBe(500);
    expect(await res.json()).toMatchObject({
      error: expect.stringMatching(/^switchover failed/),
      fenced: false,
    });
    expect(ka.status()).toMatchObject({ role: 'primary', fenced: false, fenceReason: null });
    await a.query('INSERT INTO t VALUES (8888)');
    await a.query('DELETE FROM t WHERE id = 8888');
    kb = await startTestKeeper(configB, 'kb');
    await until('b synchronous again', () => kb.status().sync.observation === 'sync');
  });

  it('switches over without losing a committed row: old primary fenced, standby promoted', async () => {
    await a.query('INSERT INTO t SELECT generate_series(10, 500)');
    const res = await post(`${ka.url}/switchover`, TOKEN);
    const body = (await res.json()) as { ok?: boolean; promoted?: string; timeline?: number; error?: string };
    expect(res.status, body.error).toBe(200);
    expect(body).toMatchObject({ ok: true, promoted: 'b', timeline: 2 });
    await expect(a.query('INSERT INTO t VALUES (9999)', [], { timeoutMs: 5000 })).rejects.toMatchObject({
      code: '25006',
    });
    const [row] = await b.query<{ n: string }>('SELECT count(*) AS n FROM t');
    expect(Number(row?.n)).toBe(2 + 101 + 491);
    await b.query('INSERT INTO t VALUES (9999)');
    await until('kb in primary mode', () => kb.status().role === 'primary');
    await sleep(INTERVAL * 3);
    expect(ka.status()).toMatchObject({ role: 'primary', fenced: true, fenceReason: 'switchover to b' });
    expect(kb.status().counters.promotions).toBe(1);
  });
});
