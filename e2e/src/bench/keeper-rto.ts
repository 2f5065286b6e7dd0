import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect } from '@pgfleet/connection';
import { type KeeperHandle, parseConfig, startKeeper } from '@pgfleet/keeper';
import { freePort, Sandbox } from '@pgfleet/sandbox';
import pino from 'pino';

export interface RtoTrial {
  /** Postmaster SIGKILL to the first committed INSERT on the promoted standby. */
  rtoMs: number;
  /** interval × failures: how long detection may take without the fast path. */
  windowMs: number;
}

const TOKEN = 'bench-keeper-token';

async function until(what: string, fn: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await fn().catch(() => false)) return;
    await sleep(25);
  }
  throw new Error(`bench: timed out waiting for ${what}`);
}

/** One INSERT on a fresh connection with a short timeout; true when it committed. */
async function tryWrite(conninfo: string): Promise<boolean> {
  try {
    const client = await connect(conninfo, { connectTimeoutMs: 200, statementTimeoutMs: 500 });
    try {
      await client.query('INSERT INTO rto_probe DEFAULT VALUES');
      return true;
    } finally {
      client.end().catch(() => {});
    }
  } catch {
    return false;
  }
}

/**
 * One failover trial on a fresh pair: primary `a` + standby `b` with a keeper each (sync
 * replication configured, so the standby is promotable only while sync is healthy), steady
 * state reached, then the primary fails (`fault`) and we time the first write that commits on `b`.
 */
export type PrimaryFault = 'kill' | 'freeze';

export async function rtoTrial(
  intervalMs: number,
  failures: number,
  fault: PrimaryFault = 'kill',
): Promise<RtoTrial> {
  const sb = await Sandbox.create({ name: 'bench-rto' });
  const keepers: KeeperHandle[] = [];
  const logger = pino({ level: process.env.BENCH_LOG ?? 'silent' });
  try {
    const a = await sb.startNode('a');
    await a.query(
      'CREATE TABLE rto_probe (id bigserial PRIMARY KEY, at timestamptz DEFAULT clock_timestamp())',
    );
    const b = await sb.createStandby('b', a);
    const [portA, portB] = [await freePort(), await freePort()];
    const common = {
      interval: `${intervalMs}ms`,
      failures,
      syncStandbyNames: 'ANY 1 (b)',
      startupGrace: '5s',
      http: { token: TOKEN },
      log: { level: 'warn' as const },
    };
    keepers.push(
      await startKeeper(
        parseConfig({
          ...common,
          node: { name: 'a', conninfo: a.conninfo() },
          peer: {
            name: 'b',
            conninfo: b.conninfo({ from: 'keeper-a' }),
            keeperUrl: `http://127.0.0.1:${portB}`,
          },
          http: { ...common.http, listen: `127.0.0.1:${portA}` },
        }),
        { logger },
      ),
      await startKeeper(
        parseConfig({
          ...common,
          node: { name: 'b', conninfo: b.conninfo() },
          peer: {
            name: 'a',
            conninfo: a.conninfo({ from: 'keeper-b' }),
            keeperUrl: `http://127.0.0.1:${portA}`,
          },
          http: { ...common.http, listen: `127.0.0.1:${portB}` },
        }),
        { logger },
      ),
    );
    await until('sync replication restored by the keeper', async () => {
      const rows = await a.query<{ s: string }>(
        `SELECT sync_state AS s FROM pg_stat_replication WHERE application_name = 'b' AND state = 'streaming'`,
      );
      return rows[0]?.s === 'quorum' || rows[0]?.s === 'sync';
    });
    // Steady: the standby keeper saw its primary with synchronous replication on, so it is promotable.
    await until('standby keeper steady', async () => {
      const status = (await (await fetch(`http://127.0.0.1:${portB}/status`)).json()) as {
        streaming: boolean;
        sync: { observation: string };
      };
      return status.streaming && status.sync.observation === 'sync';
    });
    await a.query('INSERT INTO rto_probe DEFAULT VALUES');
    const t0 = performance.now();
    // kill: the common failure, a dead postmaster on a live host (the keeper beside it notices at once).
    // freeze: SIGSTOP of the whole server, like a dead host: only the detection window finds it.
    if (fault === 'kill') await a.kill();
    else a.pause();
    const target = b.conninfo();
    for (;;) {
      if (await tryWrite(target)) break;
      if (performance.now() - t0 > 60_000) throw new Error('bench: no promotion within 60 s');
      await sleep(10);
    }
    return { rtoMs: performance.now() - t0, windowMs: intervalMs * failures };
  } finally {
    await Promise.all(keepers.map((k) => k.stop()));
    await sb.destroy();
  }
}

/** Idle keeper footprint: RSS and CPU share of a keeper process watching a healthy pair. */
export async function idleFootprint(
  spawnKeeper: (configYaml: string) => { pid: number; stop: () => Promise<void> },
  seconds: number,
): Promise<{ rssMb: number; cpuPercent: number }> {
  const sb = await Sandbox.create({ name: 'bench-idle' });
  try {
    const a = await sb.startNode('a');
    const b = await sb.createStandby('b', a);
    const port = await freePort();
    const yaml = [
      'node:',
      `  name: b`,
      `  conninfo: "${b.conninfo()}"`,
      'peer:',
      `  name: a`,
      `  conninfo: "${a.conninfo()}"`,
      'interval: 1s',
      `http:`,
      `  listen: "127.0.0.1:${port}"`,
      'log:',
      '  level: warn',
    ].join('\n');
    const keeper = spawnKeeper(yaml);
    try {
      await until(
        'keeper http up',
        async () => (await fetch(`http://127.0.0.1:${port}/health`)).status < 500,
      );
      await sleep(2_000);
      const before = cpuTicks(keeper.pid);
      const t0 = performance.now();
      await sleep(seconds * 1000);
      const ticks = cpuTicks(keeper.pid) - before;
      const wallS = (performance.now() - t0) / 1000;
      const cpuPercent = (ticks / CLK_TCK / wallS) * 100;
      return { rssMb: rssKb(keeper.pid) / 1024, cpuPercent };
    } finally {
      await keeper.stop();
    }
  } finally {
    await sb.destroy();
  }
}

const CLK_TCK = 100;

function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime + stime (fields 14 and 15 of proc(5), counted after the comm field)
  return Number(fields[11]) + Number(fields[12]);
}

function rssKb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? 0);
}
