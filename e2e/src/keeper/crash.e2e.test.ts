import { rmSync } from 'node:fs';
import { dirname } from 'node:path';
import type { KeeperStatus } from '@pgfleet/keeper';
import type { Sandbox, SandboxNode } from '@pgfleet/sandbox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliProcess, sandboxPair, sleep, spawnCli, syncNames, until, writeConfig } from './fixture.js';

/**
 * Issue 3, scenario 10: the keepers run as `pgfleet-keeper run` processes and are SIGKILLed.
 * PostgreSQL does not depend on them; restarted, they find the pair as it is and do nothing.
 */

const INTERVAL = 300;
const FAILURES = 3;
const WINDOW = INTERVAL * FAILURES;
const SYNC = 'ANY 1 (a, b)';

async function status(url: string): Promise<KeeperStatus> {
  const res = await fetch(`${url}/status`, { signal: AbortSignal.timeout(2000) });
  return (await res.json()) as KeeperStatus;
}

/** Decisions that change something, as logged by a keeper process (pino JSON on stdout). */
/** Decisions and events a keeper process logged (JSON lines on stderr: it is a pipe here). */
function actions(p: CliProcess): string[] {
  return p.out.stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { decision?: string; event?: string; msg: string })
    .filter(
      (l) =>
        ['promote', 'degrade', 'restore', 'fence', 'unfence'].includes(l.decision ?? '') ||
        ['promoted', 'fenced', 'unfenced'].includes(l.event ?? ''),
    )
    .map((l) => l.msg);
}

describe('keeper e2e: keeper processes crash', () => {
  let sb: Sandbox;
  let a: SandboxNode;
  let b: SandboxNode;
  const files: Record<'a' | 'b', string> = { a: '', b: '' };
  const urls: Record<'a' | 'b', string> = { a: '', b: '' };
  const procs: CliProcess[] = [];

  function start(node: 'a' | 'b'): CliProcess {
    const p = spawnCli(['run', '--config', files[node]]);
    procs.push(p);
    return p;
  }

  beforeAll(async () => {
    let raw: Awaited<ReturnType<typeof sandboxPair>>['raw'];
    ({ sb, a, b, raw } = await sandboxPair('e2e-keeper-crash', 'CREATE TABLE t (id int PRIMARY KEY)', {
      intervalMs: INTERVAL,
      failures: FAILURES,
      connectTimeoutMs: 250,
      syncStandbyNames: SYNC,
      extra: { startupGrace: '5s', log: { level: 'info' } },
    }));
    for (const n of ['a', 'b'] as const) {
      files[n] = writeConfig(raw[n]);
      urls[n] = `http://${raw[n].http.listen}`;
    }
  });

  afterAll(async () => {
    for (const p of procs) p.child.kill('SIGKILL');
    await Promise.all(procs.map((p) => p.exit));
    for (const f of Object.values(files)) if (f) rmSync(dirname(f), { recursive: true, force: true });
    await sb?.destroy();
  });

  it('10. SIGKILL of both keeper processes: PostgreSQL keeps serving, restarted keepers resume their modes and take no action', async () => {
    const [pa, pb] = [start('a'), start('b')];
    await until(
      'keepers up, sync on, b synchronous',
      async () =>
        (await syncNames(a)) === SYNC &&
        (await status(urls.a)).role === 'primary' &&
        (await status(urls.b)).sync.observation === 'sync',
      30_000,
    );

    pa.child.kill('SIGKILL');
    pb.child.kill('SIGKILL');
    expect(await pa.exit).toBe('SIGKILL');
    expect(await pb.exit).toBe('SIGKILL');
    await expect(fetch(`${urls.a}/status`)).rejects.toThrow();
    // (The log scan below does see actions: the first run turned sync on.)
    expect(actions(pa).some((m) => /^restoring synchronous replication/.test(m))).toBe(true);

    // Without keepers: synchronous commits go on, replication goes on, nobody changes roles.
    for (let i = 1; i <= 20; i++) {
      await a.query('INSERT INTO t VALUES ($1)', [i], { timeoutMs: 5000 });
      await sleep((WINDOW * 2) / 20);
    }
    const [row] = await b.query<{ n: string }>('SELECT count(*) AS n FROM t');
    expect(Number(row?.n)).toBe(20);
    expect(await syncNames(a)).toBe(SYNC);
    await expect(b.query('INSERT INTO t VALUES (100)')).rejects.toMatchObject({ code: '25006' });

    const [ra, rb] = [start('a'), start('b')];
    const [sa, sbs] = await until(
      'restarted keepers settled',
      async () => {
        const s = [await status(urls.a), await status(urls.b)] as const;
        return s[0].decision && s[1].decision?.reason === 'primary reachable' ? s : null;
      },
      30_000,
    );
    expect(sa).toMatchObject({ role: 'primary', fenced: false, sync: { degraded: false } });
    expect(sbs).toMatchObject({ role: 'standby', streaming: true });
    await sleep(WINDOW + INTERVAL);
    const [la, lb] = [await status(urls.a), await status(urls.b)];
    expect(la).toMatchObject({
      role: 'primary',
      decision: { kind: 'none' }, // nothing to do (the reason may name a probe slowed by load)
      counters: { promotions: 0, degrades: 0, restores: 0, fences: 0 },
    });
    expect(lb).toMatchObject({ role: 'standby', counters: { promotions: 0 } });
    expect(actions(ra)).toEqual([]);
    expect(actions(rb)).toEqual([]);
    await a.query('INSERT INTO t VALUES (21)');
  });
});
