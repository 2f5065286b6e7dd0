import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, type Sandbox, type SandboxNode } from '@pgfleet/sandbox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from './config.js';
import type { KeeperHandle } from './keeper.js';
import {
  createPair,
  FAILURES,
  INTERVAL,
  keeperPorts,
  pairConfig,
  type Side,
  startTestKeeper,
  teardown,
  timing,
} from './test-support/keeper-pair.js';
import { pollEvery } from './test-support/until.js';

const TOKEN = 'witness-test-token';
const until = pollEvery(20);

describe('keepers with a witness on real servers (partitions through the sandbox proxies)', () => {
  let sb: Sandbox;
  let a: SandboxNode;
  let b: SandboxNode;
  let w: KeeperHandle;
  let ka: KeeperHandle;
  let kb: KeeperHandle;

  beforeAll(async () => {
    const pair = await createPair({
      name: 'keeper-witness',
      setupSql: 'CREATE TABLE t (id int PRIMARY KEY)',
    });
    ({ sb, a, b } = pair);
    const pw = await freePort();
    const common = { ...timing, startupGrace: '5s', http: { token: TOKEN } };
    w = await startTestKeeper(
      parseConfig({
        ...common,
        mode: 'witness',
        node: { name: 'w' },
        members: { a: a.conninfo({ from: 'witness' }), b: b.conninfo({ from: 'witness' }) },
        http: { ...common.http, listen: `127.0.0.1:${pw}` },
      }),
      'w',
    );
    // Each keeper reaches the witness and the other keeper through its own proxy, so the
    // sandbox can cut those paths too.
    const via = (from: string, to: string, port: number) => `http://127.0.0.1:${sb.route(from, to, port)}`;
    const opts = {
      common,
      ports: await keeperPorts(),
      keeperUrl: via,
      side: (side: Side) => ({ witness: { url: via(`keeper-${side}`, 'witness', pw) } }),
    };
    ka = await startTestKeeper(pairConfig(pair, 'a', opts), 'ka');
    kb = await startTestKeeper(pairConfig(pair, 'b', opts), 'kb');
    await until('steady state', () => ka.status().role === 'primary' && kb.status().streaming);
    await until('witness heard from a', () => w.status().witness?.heartbeats.a !== undefined);
  });

  afterAll(() => teardown(sb, [ka, kb, w]));

  it('denies the vote to a standby cut off from a primary the witness still reaches', async () => {
    sb.partition('a', 'keeper-b');
    const blocked = await until('kb asks and is denied', () =>
      /witness denied its vote/.test(kb.status().decision?.reason ?? '') ? kb.status().decision : undefined,
    );
    // Either ground is right: the witness reaches a, or (its probe of a slow on a loaded
    // machine) a's keeper still holds its write lease. Both deny; neither grants.
    expect(blocked?.reason).toMatch(/witness reaches primary a|primary a's keeper holds its write lease/);
    await sleep(INTERVAL * FAILURES + 1000);
    expect(kb.status()).toMatchObject({ role: 'standby', counters: { promotions: 0 } });
    expect(ka.status()).toMatchObject({ role: 'primary', fenced: false });
    expect(w.status().witness?.grant).toBeNull();
    sb.healAll();
    await until('kb sees a again', () => kb.status().decision?.reason === 'primary reachable');
  });

  it('an isolated primary fences itself before the standby promotes with the witness vote', async () => {
    await a.query('INSERT INTO t SELECT generate_series(1, 100)');
    // b holds the rows (async replication: asking kb's status could read a lag of 0 taken
    // before the insert, and the cut would then lose them by design).
    await until('b replayed', async () => {
      const [r] = await b.query<{ n: string }>('SELECT count(*) AS n FROM t');
      return Number(r?.n) === 100;
    });
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
