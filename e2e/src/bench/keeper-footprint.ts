import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, Sandbox } from '@pgfleet/sandbox';

async function until(what: string, fn: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await fn().catch(() => false)) return;
    await sleep(25);
  }
  throw new Error(`bench: timed out waiting for ${what}`);
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
      return await processFootprint(keeper.pid, seconds);
    } finally {
      await keeper.stop();
    }
  } finally {
    await sb.destroy();
  }
}

const CLK_TCK = 100;

/** RSS at the end, and CPU share over `seconds` of wall time, of a running process. */
export async function processFootprint(
  pid: number,
  seconds: number,
): Promise<{ rssMb: number; cpuPercent: number }> {
  const before = cpuTicks(pid);
  const t0 = performance.now();
  await sleep(seconds * 1000);
  const ticks = cpuTicks(pid) - before;
  const wallS = (performance.now() - t0) / 1000;
  return { rssMb: rssKb(pid) / 1024, cpuPercent: (ticks / CLK_TCK / wallS) * 100 };
}

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
