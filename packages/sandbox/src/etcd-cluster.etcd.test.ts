import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdCluster } from './etcd-cluster.js';

/**
 * One call to etcd's v3 JSON gateway with a hard timeout. Resolves to the parsed body, or to
 * 'timeout' / the socket error code: what a client behind a cut proxy or a dead member sees.
 */
function v3(url: string, path: string, body: unknown, timeoutMs = 1_500): Promise<unknown> {
  return new Promise((resolve) => {
    const data = JSON.stringify(body);
    const req = request(
      `${url}/v3${path}`,
      { method: 'POST', agent: false, headers: { 'content-type': 'application/json' } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          text += c;
        });
        res.on('end', () => resolve(JSON.parse(text)));
        res.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
      },
    );
    const timer = setTimeout(() => {
      req.destroy();
      resolve('timeout');
    }, timeoutMs);
    req.on('close', () => clearTimeout(timer));
    req.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    req.end(data);
  });
}

const b64 = (s: string) => Buffer.from(s).toString('base64');
const put = (url: string, key: string, value: string, timeoutMs?: number) =>
  v3(url, '/kv/put', { key: b64(key), value: b64(value) }, timeoutMs);
async function get(url: string, key: string, timeoutMs?: number): Promise<string | null | unknown> {
  const res = (await v3(url, '/kv/range', { key: b64(key) }, timeoutMs)) as { kvs?: { value: string }[] };
  if (typeof res !== 'object' || res === null || 'error' in res) return res;
  return res.kvs?.[0] ? Buffer.from(res.kvs[0].value, 'base64').toString() : null;
}
const ok = (res: unknown) => typeof res === 'object' && res !== null && 'header' in res && !('error' in res);

/** A write that must succeed within `ms`, retried while etcd elects a leader after a fault. */
async function putSoon(url: string, key: string, value: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  let last: unknown;
  while (Date.now() < deadline) {
    last = await put(url, key, value, Math.min(5_000, Math.max(100, deadline - Date.now())));
    if (ok(last)) return;
    await sleep(100);
  }
  throw new Error(`put ${key} via ${url} did not succeed within ${ms} ms: ${JSON.stringify(last)}`);
}

describe('EtcdCluster', () => {
  let etcd: EtcdCluster;

  beforeAll(async () => {
    etcd = await EtcdCluster.start({ name: 'etcd-test' });
  });

  afterAll(async () => {
    await etcd?.destroy();
  });

  it('runs three real etcd members on 127.0.0.1 that replicate a write to each other', async () => {
    expect(etcd.members.map((m) => m.name)).toEqual(['etcd1', 'etcd2', 'etcd3']);
    expect(etcd.binary.version).toMatch(/^3\.\d+\.\d+$/);
    for (const url of etcd.endpoints()) expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const [u1, u2, u3] = etcd.endpoints({ from: 'writer' });
    await putSoon(u1!, '/t/replicated', 'v1');
    // A linearizable read on another member sees the write.
    expect(await get(u2!, '/t/replicated')).toBe('v1');
    expect(await get(u3!, '/t/replicated')).toBe('v1');
    for (const m of etcd.members) expect(existsSync(m.dataDir)).toBe(true);
  });

  it('loses quorum when two of three members are killed, and regains it when they restart', async () => {
    const survivor = etcd.member('etcd1').clientUrl;
    await etcd.kill('etcd2');
    // One of three down: still a quorum.
    await putSoon(survivor, '/t/quorum', 'two-of-three');
    await etcd.kill('etcd3');
    expect(etcd.member('etcd2').isRunning).toBe(false);
    // No quorum: a write is never acknowledged (etcd times out or the client's deadline hits).
    const res = await put(survivor, '/t/quorum', 'alone', 3_000);
    expect(ok(res)).toBe(false);
    expect(await etcd.member('etcd1').isHealthy()).toBe(false);
    await etcd.restart('etcd2', { waitHealthy: false });
    await etcd.restart('etcd3', { waitHealthy: false });
    await etcd.waitHealthy();
    await putSoon(survivor, '/t/quorum', 'back');
    expect(await get(etcd.member('etcd3').clientUrl, '/t/quorum', 5_000)).toBe('back');
  });

  it('partitions one client from every member while another client still reaches them', async () => {
    const cut = etcd.endpoints({ from: 'keeper-a' });
    const other = etcd.endpoints({ from: 'keeper-b' });
    expect(new Set([...cut, ...other]).size).toBe(6);
    etcd.partition('keeper-a');
    // Requests sent into the cut go to their own key: like TCP retransmissions, their bytes may
    // still reach etcd after the heal, although the client gave up on them long before.
    for (const url of cut) expect(await put(url, '/t/cut-stale', 'a', 800)).toBe('timeout');
    for (const url of other) await putSoon(url, '/t/cut', 'b');
    etcd.heal('keeper-a');
    await putSoon(cut[0]!, '/t/cut', 'a-healed');
    expect(await get(other[2]!, '/t/cut')).toBe('a-healed');
  });

  it('partitions a client from chosen members only', async () => {
    const urls = etcd.endpoints({ from: 'keeper-c' });
    etcd.partition('keeper-c', ['etcd1', 'etcd2']);
    expect(await put(urls[0]!, '/t/some-stale', 'x', 800)).toBe('timeout');
    await putSoon(urls[2]!, '/t/some', 'y');
    etcd.healAll();
    await putSoon(urls[0]!, '/t/some', 'z');
  });

  it('pause freezes one member (its clients hang) while the other two keep serving', async () => {
    const [u1, u2] = etcd.endpoints({ from: 'pauser' });
    etcd.pause('etcd1');
    try {
      expect(etcd.member('etcd1').isPaused).toBe(true);
      // A frozen member still holds this request in its socket buffer and may apply it on resume.
      expect(await put(u1!, '/t/paused-stale', 'x', 800)).toBe('timeout');
      await putSoon(u2!, '/t/paused', 'y');
    } finally {
      etcd.resume('etcd1');
    }
    await etcd.waitHealthy();
    expect(await get(u1!, '/t/paused', 5_000)).toBe('y');
  });

  it('killAll takes etcd down entirely; restartAll brings back the data', async () => {
    const url = etcd.member('etcd2').clientUrl;
    await putSoon(url, '/t/durable', 'kept');
    await etcd.killAll();
    expect(etcd.members.every((m) => !m.isRunning)).toBe(true);
    expect(await put(url, '/t/x', 'x', 800)).toBe('ECONNREFUSED');
    await etcd.restartAll();
    expect(await get(url, '/t/durable', 5_000)).toBe('kept');
  });
});

describe('EtcdCluster cleanup', () => {
  const script = `
    import { EtcdCluster } from '@pgfleet/sandbox';
    const etcd = await EtcdCluster.start({ name: 'etcd-cleanup', members: 1 });
    console.log(JSON.stringify({ root: etcd.root, pid: etcd.members[0].pid }));
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

  it('leaves no etcd process and no data dir behind after Ctrl-C', async () => {
    const { child, root, pid } = await runChild();
    expect(alive(pid)).toBe(true);
    expect(existsSync(root)).toBe(true);
    child.kill('SIGINT');
    await waitGone(pid, root, 10_000);
    expect(alive(pid)).toBe(false);
    expect(existsSync(root)).toBe(false);
  });

  it('leaves no etcd process and no data dir behind when its owner is SIGKILLed (watchdog)', async () => {
    const { child, root, pid } = await runChild();
    child.kill('SIGKILL');
    await waitGone(pid, root, 10_000);
    expect(alive(pid)).toBe(false);
    expect(existsSync(root)).toBe(false);
  });
});
