import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '@pgfleet/sandbox';

/**
 * A real HAProxy (Debian's `haproxy`, installed by .ci/run) in front of the keeper-protected
 * servers, on loopback ports, with two frontends:
 *
 * - `patroni`: Patroni's documented check, `option httpchk GET /primary`, `http-check expect
 *   status 200`, `inter 500ms fall 2 rise 1`, `on-marked-down shutdown-sessions`;
 * - `plain`: HAProxy's own default, a bare `option httpchk` (it sends `OPTIONS /` and takes any
 *   2xx/3xx as up), which is what a config copied from elsewhere often has.
 *
 * Both route writes; the runtime API on a unix socket tells which servers are up.
 */

export interface HaproxyServer {
  name: string;
  /** PostgreSQL port on 127.0.0.1. */
  port: number;
  /** The keeper's HTTP port (the health check target). */
  checkPort: number;
}

export type HaproxyFrontend = 'patroni' | 'plain';

export interface HaproxyHandle {
  /** Loopback port of each frontend. */
  readonly ports: Record<HaproxyFrontend, number>;
  /** 'UP' / 'DOWN' (or a transition state) of every server of a frontend. */
  states(frontend?: HaproxyFrontend): Promise<Record<string, string>>;
  /** Waits until the frontend's servers are in exactly these states. */
  waitStates(
    want: Record<string, 'UP' | 'DOWN'>,
    frontend?: HaproxyFrontend,
    timeoutMs?: number,
  ): Promise<void>;
  stop(): Promise<void>;
}

/** The haproxy binary, or null when it is not installed. */
export function findHaproxy(): string | null {
  for (const p of ['/usr/sbin/haproxy', '/usr/bin/haproxy', '/usr/local/sbin/haproxy']) {
    try {
      execFileSync(p, ['-v'], { stdio: 'ignore' });
      return p;
    } catch {
      // not there
    }
  }
  return null;
}

export function haproxyConfig(
  servers: HaproxyServer[],
  ports: Record<HaproxyFrontend, number>,
  socket: string,
): string {
  const backend = (s: HaproxyServer) => `    server ${s.name} 127.0.0.1:${s.port} check port ${s.checkPort}`;
  return [
    'global',
    `    stats socket ${socket} mode 600 level admin`,
    '    maxconn 500',
    'defaults',
    '    mode tcp',
    '    timeout connect 1s',
    '    timeout client 30m',
    '    timeout server 30m',
    '    timeout check 1s',
    '',
    '# Patroni docs, haproxy.cfg (health check on the REST API)',
    'listen patroni',
    `    bind 127.0.0.1:${ports.patroni}`,
    '    option httpchk GET /primary',
    '    http-check expect status 200',
    '    default-server inter 500ms fall 2 rise 1 on-marked-down shutdown-sessions',
    ...servers.map(backend),
    '',
    "# HAProxy's default check: OPTIONS /, any 2xx or 3xx",
    'listen plain',
    `    bind 127.0.0.1:${ports.plain}`,
    '    option httpchk',
    '    default-server inter 500ms fall 2 rise 1 on-marked-down shutdown-sessions',
    ...servers.map(backend),
    '',
  ].join('\n');
}

function runtimeApi(socket: string, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ path: socket });
    let out = '';
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`haproxy runtime API: no answer to ${command}`));
    }, 2000);
    s.on('connect', () => s.write(`${command}\n`));
    s.on('data', (d) => {
      out += String(d);
    });
    s.on('end', () => {
      clearTimeout(timer);
      resolve(out);
    });
    s.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

export async function startHaproxy(servers: HaproxyServer[]): Promise<HaproxyHandle> {
  const bin = findHaproxy();
  if (!bin) throw new Error('haproxy is not installed (apt-get install haproxy; .ci/run does it)');
  const dir = mkdtempSync(join(tmpdir(), 'pgfleet-haproxy-'));
  const socket = join(dir, 'admin.sock');
  const ports = { patroni: await freePort(), plain: await freePort() };
  const cfg = join(dir, 'haproxy.cfg');
  writeFileSync(cfg, haproxyConfig(servers, ports, socket));
  execFileSync(bin, ['-c', '-q', '-f', cfg]);
  // -db: stay in the foreground, so the process is ours to stop (and dies with us).
  const child: ChildProcess = spawn(bin, ['-db', '-f', cfg], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d) => {
    stderr += String(d);
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);

  async function states(frontend: HaproxyFrontend = 'patroni'): Promise<Record<string, string>> {
    // `show stat` CSV: pxname,svname,...,status (18th column)
    const csv = await runtimeApi(socket, 'show stat');
    const header = csv.split('\n')[0]!.replace(/^# /, '').split(',');
    const status = header.indexOf('status');
    const out: Record<string, string> = {};
    for (const line of csv.split('\n').slice(1)) {
      const cols = line.split(',');
      if (cols[0] !== frontend || cols[1] === 'FRONTEND' || cols[1] === 'BACKEND' || !cols[1]) continue;
      out[cols[1]] = (cols[status] ?? '').split(' ')[0]!;
    }
    return out;
  }

  const handle: HaproxyHandle = {
    ports,
    states,
    async waitStates(want, frontend = 'patroni', timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      let last: Record<string, string> = {};
      while (Date.now() < deadline) {
        last = await states(frontend).catch(() => ({}));
        if (Object.entries(want).every(([k, v]) => last[k] === v)) return;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(
        `haproxy ${frontend}: servers not ${JSON.stringify(want)} after ${timeoutMs} ms: ${JSON.stringify(last)} ${stderr}`,
      );
    },
    async stop() {
      process.off('exit', killOnExit);
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
  // The runtime socket appears once haproxy runs.
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      await states();
      return handle;
    } catch (err) {
      if (child.exitCode !== null || Date.now() > deadline) {
        await handle.stop();
        throw new Error(`haproxy did not start: ${(err as Error).message} ${stderr}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}
