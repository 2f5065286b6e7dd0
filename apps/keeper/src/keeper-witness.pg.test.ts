import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, Sandbox, type SandboxNode } from '@pgfleet/sandbox';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from './config.js';
import { type KeeperHandle, startKeeper } from './keeper.js';

const major = process.env.PGFLEET_PG_VERSION ? Number(process.env.PGFLEET_PG_VERSION) : undefined;
const INTERVAL = 300;
const FAILURES = 3;
const TOKEN = 'witness-test-token';
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

describe('keepers with a witness on real servers (partitions through the sandbox proxies)', () => {
  let sb: Sandbox;
  let a: SandboxNode;
  let b: SandboxNode;
  let w: KeeperHandle;
  let ka: KeeperHandle;
  let kb: KeeperHandle;

  beforeAll(async () => {
    sb = await Sandbox.create({ name: 'keeper-witness', major });
    a = await sb.startNode('a');
    await a.query('CREATE TABLE t (id int PRIMARY KEY)');
    b = await sb.createStandby('b', a);
    const [pw, pa, pb] = [await freePort(), await freePort(), await freePort()];
    const common = {
      interval: `${INTERVAL}ms`,
      failures: FAILURES,
      connectTimeout: '250ms',
      startupGrace: '5s',
      http: { token: TOKEN },
    };
    w = await startKeeper(
      parseConfig({
        ...common,
        mode: 'witness',
        node: { name: 'w' },
        members: { a: a.conninfo({ from: 'witness' }), b: b.conninfo({ from: 'witness' }) },
        http: { ...common.http, listen: `127.0.0.1:${pw}` },
      }),
      { logger: logger.child({ test: 'w' }) },
    );
    // Each keeper reaches the witness and the other keeper through its own proxy, so the
    // sandbox can cut those paths too.
    const via = (from: string, to: string, port: number) => `http://127.0.0.1:${sb.route(from, to, port)}`;
    ka = await startKeeper(
      parseConfig({
        ...common,
        node: { name: 'a', conninfo: a.conninfo() },
        peer: {
          name: 'b',
          conninfo: b.conninfo({ from: 'keeper-a' }),
          keeperUrl: via('keeper-a', 'keeper-b', pb),
        },
        witness: { url: via('keeper-a', 'witness', pw) },
        http: { ...common.http, listen: `127.0.0.1:${pa}` },
      }),
      { logger: logger.child({ test: 'ka' }) },
    );
    kb = await startKeeper(
      parseConfig({
        ...common,
        node: { name: 'b', conninfo: b.conninfo() },
        peer: {
          name: 'a',
          conninfo: a.conninfo({ from: 'keeper-b' }),
          keeperUrl: via('keeper-b', 'keeper-a', pa),
        },
        witness: { url: via('keeper-b', 'witness', pw) },
        http: { ...common.http, listen: `127.0.0.1:${pb}` },
      }),
      { logger: logger.child({ test: 'kb' }) },
    );
    await until('steady state', () => ka.status().role === 'primary' && kb.status().streaming);
    await until('witness heard from a', () => w.status().witness?.heartbeats.a !== undefined);
  });

  afterAll(async () => {
    await Promise.all([ka?.stop(), kb?.stop(), w?.stop()]);
    await sb?.destroy();
  });

  it('denies the vote to a standby cut off from a primary the witness still reaches', async () => {
    sb.partition('a', 'keeper-b');
    const blocked = await until('kb asks and is denied', () =>
      /witness denied its vote/.test(kb.status().decision?.reason ?? '') ? kb.status().decision : undefined,
    );
    expect(blocked?.reason).toMatch(/witness reaches primary a/);
    await sleep(INTERVAL * FAILURES + 1000);
    expect(kb.status()).toMatchObject({ role: 'standby', counters: { promotions: 0 } });
    expect(ka.status()).toMatchObject({ role: 'primary', fenced: false });
    expect(w.status().witness?.grant).toBeNull();
    sb.healAll();
    await until('kb sees a again', () => kb.status().decision?.reason === 'primary reachable');
  });

  it('an isolated primary fences itself before the standby promotes with the witness vote', async () => {
    await a.query('INSERT INTO t SELECT generate_series(1, 100)');
    await until('b replayed', () => kb.status().lagBytes === 0);
    // a keeps its own keeper (same host) but loses b, the witness, and both keepers' paths.
    sb.isolate('a');
    sb.partition('keeper-a', 'b');
    sb.partition('keeper-a', 'witness');
    sb.partition('keeper-a', 'keeper-b');
    const cutAt = Date.now();
    let fencedAt = 0;
    let promotedAt = 0;
    await until(
      'fence and promotion',
      () => {
        if (!fencedAt && ka.status().fenced) fencedAt = Date.now();
        if (!promotedAt && kb.status().role === 'primary') promotedAt = Date.now();
        return fencedAt > 0 && promotedAt > 0;
      },
      15_000,
    );
    expect(fencedAt).toBeLessThan(promotedAt);
    expect(promotedAt - cutAt).toBeLessThan(INTERVAL * FAILURES + 2000);
    expect(ka.status().fenceReason).toMatch(/neither standby nor witness reachable/);
    expect(kb.status().decision?.reason ?? '').toMatch(/witness granted its vote/);
    expect(w.status().witness?.grant?.to).toBe('b');
    await expect(a.query('INSERT INTO t VALUES (1000)', [], { timeoutMs: 5000 })).rejects.toMatchObject({
      code: '25006',
    });
    await b.query('INSERT INTO t VALUES (1000)');
    const [row] = await b.query<{ n: string }>('SELECT count(*) AS n FROM t');
    expect(Number(row?.n)).toBe(101);
  });

  it('keeps the old primary fenced after the partition heals: its peer runs a newer timeline', async () => {
    sb.healAll();
    await until(
      'witness hears b as primary, grant consumed',
      () => w.status().witness?.grant === null,
      10_000,
    );
    await sleep(INTERVAL * 4);
    expect(ka.status()).toMatchObject({
      role: 'primary',
      fenced: true,
      peer: { role: 'primary', timeline: 2 },
    });
    expect(await (await fetch(`${ka.url}/primary`)).status).toBe(503);
    expect(await (await fetch(`${kb.url}/primary`)).status).toBe(200);
  });
});
