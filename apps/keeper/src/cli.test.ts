import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { duplicateJsonKeys } from '@pgfleet/cli/testing';
import { afterEach, describe, expect, it } from 'vitest';

/** The CLI as a child process, the way e2e and systemd run it (TypeScript sources via tsx). */
const here = dirname(fileURLToPath(import.meta.url));
const cli = join(here, 'cli.ts');

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

function run(args: string[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', cli, ...args], {
    cwd: join(here, '..'),
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (c) => {
    out += String(c);
  });
  child.stderr.on('data', (c) => {
    out += String(c);
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, exited, output: () => out };
}

function witnessConfig(port: number): string {
  const file = join(mkdtempSync(join(tmpdir(), 'keeper-cli-')), 'witness.yaml');
  writeFileSync(
    file,
    [
      'mode: witness',
      'node:',
      '  name: w',
      'members:',
      '  a: "host=127.0.0.1 port=1 user=postgres password=s3cret connect_timeout=1"',
      '  b: "host=127.0.0.1 port=2 user=postgres password=s3cret connect_timeout=1"',
      'http:',
      `  listen: "127.0.0.1:${port}"`,
    ].join('\n'),
  );
  return file;
}

async function waitHealthy(port: number): Promise<number> {
  const deadline = Date.now() + 20_000;
  let health = 0;
  while (Date.now() < deadline && health !== 200) {
    health = await fetch(`http://127.0.0.1:${port}/health`).then(
      (r) => r.status,
      () => 0,
    );
    if (health !== 200) await new Promise((r) => setTimeout(r, 100));
  }
  return health;
}

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
});

describe('pgfleet-keeper as a child process', () => {
  it('runs a witness, answers status over HTTP, and exits 0 on SIGTERM', async () => {
    const port = await freePort();
    const keeper = run(['run', '--config', witnessConfig(port)], {
      PGFLEET_KEEPER_HTTP_TOKEN: 'cli-test-token',
    });
    children.push(keeper.child);
    expect(await waitHealthy(port), keeper.output()).toBe(200);

    const status = run(['status', '--url', `http://127.0.0.1:${port}`]);
    expect(await status.exited).toBe(0);
    expect(status.output()).toMatch(/^node +w \(witness mode\)$/m);

    keeper.child.kill('SIGTERM');
    expect(await keeper.exited).toBe(0);
    expect(keeper.output()).toMatch(/witness stopped/);
    expect(keeper.output()).not.toContain('s3cret');
    // stderr is a pipe here, so logs are JSON lines: one object each, no key twice.
    const lines = keeper
      .output()
      .split('\n')
      .filter((l) => l.startsWith('{'));
    expect(lines.length).toBeGreaterThan(2);
    for (const line of lines) {
      expect(JSON.parse(line)).toHaveProperty('msg');
      expect(duplicateJsonKeys(line), line).toEqual([]);
    }
  }, 60_000);

  it('writes readable log lines with --log-format pretty', async () => {
    const port = await freePort();
    const keeper = run(['run', '--config', witnessConfig(port), '--log-format', 'pretty'], {
      PGFLEET_KEEPER_HTTP_TOKEN: 'cli-test-token',
    });
    children.push(keeper.child);
    expect(await waitHealthy(port), keeper.output()).toBe(200);
    keeper.child.kill('SIGTERM');
    expect(await keeper.exited).toBe(0);
    const lines = keeper.output().trim().split('\n');
    expect(
      lines.some((l) => /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: witness w: witness w started/.test(l)),
      keeper.output(),
    ).toBe(true);
    expect(lines.filter((l) => l.startsWith('{'))).toEqual([]);
  }, 60_000);

  it('exits 2 naming the key for a bad config', async () => {
    const proc = run(['run', '--node.name', 'a', '--interval', 'fast']);
    expect(await proc.exited).toBe(2);
    expect(proc.output()).toMatch(/"interval": bad duration/);
  }, 30_000);
});
