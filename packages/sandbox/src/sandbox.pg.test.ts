import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SandboxNode } from './node.js';
import { Sandbox } from './sandbox.js';

const major = process.env.PGFLEET_PG_VERSION ? Number(process.env.PGFLEET_PG_VERSION) : undefined;

/** Tries one connection + SELECT 1 with a hard timeout; resolves to the error code or 'ok'. */
async function attempt(conninfoPort: number, password: string, timeoutMs: number): Promise<string> {
  const client = new pg.Client({
    host: '127.0.0.1',
    port: conninfoPort,
    user: 'postgres',
    password,
    database: 'postgres',
    connectionTimeoutMillis: timeoutMs,
    query_timeout: timeoutMs,
  });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query('SELECT 1');
    return 'ok';
  } catch (err) {
    const e = err as { code?: string; message: string };
    return e.code ?? (/timeout/i.test(e.message) ? 'timeout' : e.message);
  } finally {
    client.end().catch(() => {});
  }
}

describe('Sandbox primary + standby', () => {
  let sb: Sandbox;
  let primary: SandboxNode;
  let standby: SandboxNode;

  beforeAll(async () => {
    sb = await Sandbox.create({ name: 'sandbox-test', major });
    primary = await sb.startNode('a');
    await primary.query('CREATE TABLE items (id int PRIMARY KEY, note text)');
    standby = await sb.createStandby('b', primary);
  });

  afterAll(async () => {
    await sb?.destroy();
  });

  it('runs real servers of the requested major on 127.0.0.1, not as root', async () => {
    const [row] = await primary.query<{ v: string; addr: string; usr: string }>(
      `SELECT current_setting('server_version_num') AS v, current_setting('listen_addresses') AS addr,
              (SELECT rolname FROM pg_roles WHERE oid = 10) AS usr`,
    );
    if (major) expect(Math.floor(Number(row?.v) / 10000)).toBe(major);
    expect(row?.addr).toBe('127.0.0.1');
    // PostgreSQL refuses to run as root; when we are root the sandbox switches user.
    const status = readFileSync(`/proc/${primary.pid}/status`, 'utf8');
    const uid = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]);
    expect(uid).not.toBe(0);
  });

  it('streams a table written on the primary to the standby, which refuses writes with 25006', async () => {
    await primary.query(`INSERT INTO items SELECT g, 'n' || g FROM generate_series(1, 100) g`);
    let count = 0;
    for (let i = 0; i < 100 && count !== 100; i++) {
      const [row] = await standby.query<{ n: string }>('SELECT count(*) AS n FROM items');
      count = Number(row?.n);
      if (count !== 100) await sleep(50);
    }
    expect(count).toBe(100);
    await expect(standby.query(`INSERT INTO items VALUES (1000, 'x')`)).rejects.toMatchObject({
      code: '25006',
    });
    const rows = await primary.query<{ application_name: string; state: string }>(
      'SELECT application_name, state FROM pg_stat_replication',
    );
    expect(rows).toEqual([{ application_name: 'b', state: 'streaming' }]);
  });

  it('builds a standby with the online low-level backup copy too', async () => {
    const c = await sb.createStandby('c', primary, { method: 'copy', slot: 'c_slot' });
    await primary.query(`INSERT INTO items VALUES (5000, 'after copy')`);
    let found = 0;
    for (let i = 0; i < 100 && found === 0; i++) {
      found = (await c.query('SELECT 1 FROM items WHERE id = 5000')).length;
      if (!found) await sleep(50);
    }
    expect(found).toBe(1);
    const [rec] = await c.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r');
    expect(rec?.r).toBe(true);
    await c.stop('fast');
    await primary.query(`SELECT pg_drop_replication_slot('c_slot')`);
  });

  it('pause freezes the node (connections time out) and resume thaws it', async () => {
    const pw = primary.facts().password;
    primary.pause();
    const t0 = Date.now();
    expect(await attempt(primary.port, pw, 700)).toBe('timeout');
    expect(Date.now() - t0).toBeLessThan(3_000);
    primary.resume();
    expect(await attempt(primary.port, pw, 5_000)).toBe('ok');
  });

  it('pause freezes the whole server: an open session stops too (each backend is its own process group)', async () => {
    const held = new pg.Client({ ...primary.facts(), application_name: 'held' });
    held.on('error', () => {});
    await held.connect();
    try {
      primary.pause();
      const r = await Promise.race([
        held.query('SELECT 1').then(() => 'answered'),
        new Promise((res) => setTimeout(() => res('frozen'), 700)),
      ]);
      expect(r).toBe('frozen');
      primary.resume();
      expect((await held.query('SELECT 1 AS x')).rows).toEqual([{ x: 1 }]);
    } finally {
      primary.resume();
      await held.end().catch(() => {});
    }
  });

  it('pausePostmaster stops only the postmaster: open sessions go on, new ones hang', async () => {
    const pw = primary.facts().password;
    const held = new pg.Client({ ...primary.facts(), application_name: 'held' });
    held.on('error', () => {});
    await held.connect();
    try {
      primary.pausePostmaster();
      expect((await held.query('SELECT 2 AS x')).rows).toEqual([{ x: 2 }]);
      expect(await attempt(primary.port, pw, 700)).toBe('timeout');
    } finally {
      primary.resume();
      await held.end().catch(() => {});
    }
    expect(await attempt(primary.port, pw, 5_000)).toBe('ok');
  });

  it('a partition blocks traffic between two named parties only, and heals', async () => {
    const pw = primary.facts().password;
    const viaX = primary.facts({ from: 'x' }).port;
    const viaY = primary.facts({ from: 'y' }).port;
    expect(await attempt(viaX, pw, 3_000)).toBe('ok');
    sb.partition('x', 'a');
    expect(await attempt(viaX, pw, 700)).toBe('timeout');
    expect(await attempt(viaY, pw, 3_000)).toBe('ok');
    sb.heal('x', 'a');
    expect(await attempt(viaX, pw, 3_000)).toBe('ok');
  });

  it('a partition between primary and standby stops streaming; healing resumes it', async () => {
    sb.partition('a', 'b');
    await primary.query(`INSERT INTO items VALUES (7000, 'during partition')`);
    await sleep(700);
    expect(await standby.query('SELECT 1 FROM items WHERE id = 7000')).toHaveLength(0);
    sb.heal('a', 'b');
    let found = 0;
    for (let i = 0; i < 200 && found === 0; i++) {
      found = (await standby.query('SELECT 1 FROM items WHERE id = 7000')).length;
      if (!found) await sleep(100);
    }
    expect(found).toBe(1);
  });

  it('kill makes the primary unreachable within a second, and start brings it back', async () => {
    const pw = primary.facts().password;
    const t0 = Date.now();
    await primary.kill();
    const res = await attempt(primary.port, pw, 1_000);
    expect(Date.now() - t0).toBeLessThan(1_500);
    expect(res).not.toBe('ok');
    await primary.start();
    expect(await attempt(primary.port, pw, 5_000)).toBe('ok');
  });

  it('immediate stop and restart keep committed data', async () => {
    await primary.query(`INSERT INTO items VALUES (8000, 'before crash')`);
    await primary.stop('immediate');
    expect(primary.isRunning).toBe(false);
    await primary.start();
    expect(await primary.query('SELECT 1 FROM items WHERE id = 8000')).toHaveLength(1);
  });
});

describe('Sandbox cleanup', () => {
  const script = `
    import { Sandbox } from '@pgfleet/sandbox';
    const sb = await Sandbox.create({ name: 'cleanup-test'${major ? `, major: ${major}` : ''} });
    const n = await sb.startNode('a');
    console.log(JSON.stringify({ root: sb.root, pid: n.pid }));
    setInterval(() => {}, 1000);
  `;

  async function runChild(): Promise<{ child: ReturnType<typeof spawn>; root: string; pid: number }> {
    const child = spawn(
      process.execPath,
      ['--conditions=source', '--import', 'tsx', '--input-type=module', '-e', script],
      {
        cwd: join(import.meta.dirname, '..'),
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    const line = await new Promise<string>((resolve, reject) => {
      let buf = '';
      child.stdout?.on('data', (d: Buffer) => {
        buf += d.toString();
        const nl = buf.indexOf('\n');
        if (nl >= 0) resolve(buf.slice(0, nl));
      });
      child.once('exit', (code) => reject(new Error(`child exited early with ${code}`)));
    });
    return { child, ...(JSON.parse(line) as { root: string; pid: number }) };
  }

  function alive(pid: number): boolean {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  }

  async function waitGone(pid: number, root: string, ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline && (alive(pid) || existsSync(root))) await sleep(100);
  }

  it('leaves no postmaster and no temp dir behind after Ctrl-C', async () => {
    const { child, root, pid } = await runChild();
    expect(alive(pid)).toBe(true);
    expect(existsSync(root)).toBe(true);
    child.kill('SIGINT');
    await waitGone(pid, root, 10_000);
    expect(alive(pid)).toBe(false);
    expect(existsSync(root)).toBe(false);
  });

  it('leaves no postmaster and no temp dir behind when its process is SIGKILLed (watchdog)', async () => {
    const { child, root, pid } = await runChild();
    child.kill('SIGKILL');
    await waitGone(pid, root, 10_000);
    expect(alive(pid)).toBe(false);
    expect(existsSync(root)).toBe(false);
  });
});
