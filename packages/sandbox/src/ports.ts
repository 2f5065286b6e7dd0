import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { SandboxError } from './errors.js';

/*
 * Ports for the servers a harness starts (PostgreSQL, etcd, keepers, proxies) are picked ahead
 * of the bind, so the port must stay free in between. Asking the kernel for port 0 draws from
 * the ephemeral range, where every outgoing connection on the machine takes its source port and
 * where every other process asking for port 0 draws too: a port free a moment ago was taken by
 * the time a keeper bound it (seen in CI: "http.listen 127.0.0.1:41713: address already in use").
 * So ports come from below the ephemeral range, which the kernel never hands out by itself,
 * each process walking its own slice (by vitest worker, then by pid) and never handing out a
 * port twice: a collision needs two of our own processes on one port at the same moment.
 */

const LOW = 10_000;
const SLICES = 8;
const DEFAULT_EPHEMERAL_LOW = 32_768;

function ephemeralLow(): number {
  try {
    const [low] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/);
    const n = Number(low);
    return Number.isInteger(n) && n > 0 ? n : DEFAULT_EPHEMERAL_LOW;
  } catch {
    return DEFAULT_EPHEMERAL_LOW;
  }
}

/** The ports this process hands out: one slice of [LOW, ephemeral low), a walk from an offset. */
export interface PortPlan {
  base: number;
  size: number;
  offset: number;
}

export function portPlan(env: NodeJS.ProcessEnv, pid: number, ephemeral = ephemeralLow()): PortPlan | null {
  const span = ephemeral - LOW;
  if (span < SLICES * 100) return null; // an unusual port range: let the kernel pick
  const size = Math.floor(span / SLICES);
  const pool = Number(env.VITEST_POOL_ID ?? 0);
  const slice = (Number.isInteger(pool) && pool > 0 ? pool : 0) % SLICES;
  return { base: LOW + slice * size, size, offset: (pid * 2_654_435_761) % size };
}

const plan = portPlan(process.env, process.pid);
let handedOut = 0;

/** The next `n` untried candidates of this process's walk (empty when the kernel picks). */
function candidates(n: number): number[] {
  if (!plan) return [];
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(plan.base + ((plan.offset + handedOut++) % plan.size));
  return out;
}

/** Binds `port` on 127.0.0.1 (0: the kernel picks) and releases it: the port bound, or null if taken. */
function bindAndRelease(port: number): Promise<number | null> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', () => resolve(null));
    srv.listen(port, '127.0.0.1', () => {
      const addr = srv.address();
      const bound = typeof addr === 'object' && addr ? addr.port : null;
      srv.close(() => resolve(bound));
    });
  });
}

function noPort(): SandboxError {
  return new SandboxError(
    'SANDBOX_NO_PORT',
    `no free TCP port on 127.0.0.1 in ${LOW}..${plan ? plan.base + plan.size - 1 : 0}`,
    {
      ...plan,
    },
  );
}

/** A TCP port on 127.0.0.1, free now, outside the ephemeral range, not handed out before by this process. */
export async function freePort(): Promise<number> {
  if (!plan) {
    const port = await bindAndRelease(0);
    if (port === null) throw noPort();
    return port;
  }
  for (let tried = 0; tried < plan.size; tried++) {
    const [port] = candidates(1);
    if (port !== undefined && (await bindAndRelease(port)) !== null) return port;
  }
  throw noPort();
}

/**
 * Binds the ports given as arguments in turn (0: the kernel picks) and prints the first one
 * it could bind (-1: none).
 */
const PROBE = `const net=require('net');const ports=process.argv.slice(1).map(Number);
const at=(i)=>{if(i>=ports.length){process.stdout.write('-1');return}
const s=net.createServer();s.once('error',()=>at(i+1));
s.listen(ports[i],'127.0.0.1',()=>{process.stdout.write(String(s.address().port));s.close()})};at(0)`;

function probe(ports: number[]): number {
  return Number(
    execFileSync(process.execPath, ['-e', PROBE, ...ports.map(String)], {
      encoding: 'utf8',
      timeout: 10_000,
    }),
  );
}

/**
 * Same, synchronously (asks a short-lived child process). Used where an API must hand out an
 * address at once, e.g. `node.conninfo({ from })` creating its proxy on first use.
 */
export function freePortSync(): number {
  if (!plan) {
    const port = probe([0]);
    if (port < 0) throw noPort();
    return port;
  }
  const batch = 16;
  for (let tried = 0; tried < plan.size; tried += batch) {
    const ports = candidates(batch);
    const port = probe(ports);
    if (port >= 0) {
      handedOut -= batch - ports.indexOf(port) - 1; // the ones after it were not tried: hand them out next
      return port;
    }
  }
  throw noPort();
}
