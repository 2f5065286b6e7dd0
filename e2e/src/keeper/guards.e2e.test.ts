import type { Sandbox, SandboxNode } from '@pgfleet/sandbox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type RunningKeeper,
  runCli,
  sandboxPair,
  sleep,
  startInProcess,
  stopPair,
  syncNames,
  TOKEN,
  until,
} from './fixture.js';

/**
 * Issue 3, scenarios 8, 6 and 7: the gates that keep a standby from promoting when it should
 * not (primary never seen, replication stalled while both servers live, too much lag).
 */

const INTERVAL = 300;
const FAILURES = 3;
const CONNECT_TIMEOUT = 250;
const WINDOW = INTERVAL * FAILURES;
const GRACE = 3000;
const SYNC = 'ANY 1 (a, b)';

describe('keeper e2e: promotion gates', () => {
  let sb: Sandbox;
  let a: SandboxNode;
  let b: SandboxNode;
  let ka: RunningKeeper | undefined;
  let kb: RunningKeeper;
  let raw: Awaited<ReturnType<typeof sandboxPair>>['raw'];

  beforeAll(async () => {
    ({ sb, a, b, raw } = await sandboxPair('e2e-keeper-gates', 'CREATE TABLE filler (id int, pad text)', {
      intervalMs: INTERVAL,
      failures: FAILURES,
      connectTimeoutMs: CONNECT_TIMEOUT,
      syncStandbyNames: SYNC,
      extra: { startupGrace: `${GRACE}ms`, maxLagOnFailover: '1MiB', syncRestoreLag: '64kB' },
    }));
  });

  afterAll(async () => {
    sb?.healAll();
    await stopPair(sb, [ka, kb]);
  });

  it('8. standby keeper started while the primary is down: no promotion before startupGrace, normal once it appears', async () => {
    await a.stop('fast');
    const startedAt = Date.now();
    kb = await startInProcess('kb', raw.b);
    const blocked = await until('kb blocked by the startup grace', () => {
      const d = kb.handle.status().decision;
      return d?.kind === 'blocked' ? d : null;
    });
    expect(blocked.reason).toMatch(/primary never seen since start \(startupGrace 3s/);
    await sleep(Math.max(0, startedAt + GRACE - 500 - Date.now()));
    expect(kb.handle.status()).toMatchObject({ role: 'standby', counters: { promotions: 0 } });
    // Logged when the blocking gates change, not at every iteration (its countdown does change).
    const graceLines = kb.lines.filter((l) => l.decision === 'blocked' && /primary never seen/.test(l.msg));
    expect(graceLines.length).toBeGreaterThanOrEqual(1);
    expect(graceLines.length).toBeLessThanOrEqual(2);

    await a.start();
    ka = await startInProcess('ka', raw.a);
    await until('kb follows its primary', () => kb.handle.status().decision?.reason === 'primary reachable');
    await sleep(Math.max(0, startedAt + GRACE + WINDOW - Date.now()));
    expect(kb.handle.status()).toMatchObject({ role: 'standby', counters: { promotions: 0 } });
    await until(
      'sync on, b streaming and synchronous',
      async () =>
        (await syncNames(a)) === SYNC &&
        kb.handle.status().streaming &&
        kb.handle.status().sync.observation === 'sync',
    );
  });

  it('6. replication stalled while both servers answer SQL: the primary degrades, the standby does not promote', async () => {
    const k = ka!;
    // Cut only the replication link: both keepers still reach both servers.
    sb.partition('a', 'b');
    const started = Date.now();
    await a.query(`INSERT INTO filler SELECT g, 'stalled' FROM generate_series(1, 100) g`, [], {
      timeoutMs: 30_000,
    });
    expect(Date.now() - started).toBeLessThan(WINDOW + 2000);
    expect(await syncNames(a)).toBe('');
    // (the commit is released by the reload, a moment before the keeper records its degrade)
    await until('ka recorded the degrade', () => k.handle.status().counters.degrades === 1);
    expect(k.handle.status()).toMatchObject({ sync: { degraded: true } });
    expect(k.handle.status().decision?.reason).toMatch(
      /degrading synchronous replication: .*(stalled|not streaming)/,
    );
    await sleep(WINDOW);
    expect(kb.handle.status()).toMatchObject({
      role: 'standby',
      peer: { consecutiveFailures: 0 },
      counters: { promotions: 0 },
      decision: { reason: 'primary reachable' },
    });
    await until('kb knows it is no longer synchronous', () => kb.handle.status().sync.observation !== 'sync');

    sb.heal('a', 'b');
    await until('sync restored', async () => (await syncNames(a)) === SYNC);
    await until('kb synchronous again', () => kb.handle.status().sync.observation === 'sync');
  });

  it('manual failover is refused while the primary answers', async () => {
    const r = await runCli(['failover', '--force', '--url', kb.handle.url], {
      PGFLEET_KEEPER_HTTP_TOKEN: TOKEN,
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/primary a answers: use switchover/);
    expect(kb.handle.status()).toMatchObject({ role: 'standby', counters: { promotions: 0 } });
  });

  it('7. lag guard: replay paused, more than maxLagOnFailover behind, primary killed: no promotion, log and status say why', async () => {
    await b.query('SELECT pg_wal_replay_pause()');
    await a.query(`INSERT INTO filler SELECT g, repeat('x', 1000) FROM generate_series(1, 3000) g`, [], {
      timeoutMs: 30_000,
    });
    await until('kb measures the lag', () => (kb.handle.status().lagBytes ?? 0) > 1024 * 1024);
    const killedAt = Date.now();
    await a.kill();
    const blocked = await until('kb refuses to promote', () => {
      const d = kb.handle.status().decision;
      return d?.kind === 'blocked' ? d : null;
    });
    const lagGate = /replay lag [\d.]+ MiB > maxLagOnFailover 1\.0 MiB/;
    expect(blocked.reason).toMatch(lagGate);
    const line = kb.lines.find((l) => l.decision === 'blocked' && lagGate.test(l.msg));
    expect(line?.level).toBe(40); // warn
    expect(line?.msg).toMatch(/^not promoting: primary unreachable/);
    await sleep(Math.max(0, killedAt + WINDOW + 1000 - Date.now()));
    const status = kb.handle.status();
    expect(status).toMatchObject({ role: 'standby', replayPaused: true, counters: { promotions: 0 } });
    expect(status.decision?.reason).toMatch(lagGate);
    expect(status.lagBytes ?? 0).toBeGreaterThan(1024 * 1024);
  });

  it('manual failover: refused with the gates named, then forced by the operator', async () => {
    const env = { PGFLEET_KEEPER_HTTP_TOKEN: TOKEN };
    const refused = await runCli(['failover', '--url', kb.handle.url], env);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/replay lag [\d.]+ MiB > maxLagOnFailover 1\.0 MiB/);
    expect(refused.stderr).toMatch(/--force promotes anyway/);
    expect(kb.handle.status().role).toBe('standby');

    const forced = await runCli(['failover', '--force', '--json', '--url', kb.handle.url], env, 90_000);
    expect(forced.code, forced.stderr).toBe(0);
    expect(JSON.parse(forced.stdout)).toMatchObject({ ok: true, promoted: 'b', timeline: 2, forced: true });
    await until('kb in primary mode', () => kb.handle.status().role === 'primary');
    // Promotion ends a paused replay first: every row b had received is there.
    const [row] = await b.query<{ n: string }>('SELECT count(*) AS n FROM filler');
    expect(Number(row?.n)).toBe(3100);
    await b.query(`INSERT INTO filler VALUES (0, 'after forced failover')`);
  });
});
