import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { idleFootprint, rtoTrial } from './keeper-rto.js';
import { fmtMs, summarize } from './stats.js';

const say = (line = '') => process.stdout.write(`${line}\n`);

/** Runs the built CLI when present (what users run), else the TypeScript source via tsx. */
function spawnKeeperCli(root: string) {
  return (yaml: string) => {
    const dir = mkdtempSync(join(tmpdir(), 'pgfleet-bench-keeper-'));
    const file = join(dir, 'keeper.yaml');
    writeFileSync(file, yaml);
    const dist = join(root, 'apps', 'keeper', 'dist', 'cli.js');
    const args = existsSync(dist)
      ? [dist, 'run', '--config', file]
      : [
          '--conditions=source',
          '--import',
          'tsx',
          join(root, 'apps', 'keeper', 'src', 'cli.ts'),
          'run',
          '--config',
          file,
        ];
    const child = spawn(process.execPath, args, { stdio: 'ignore' });
    return {
      pid: child.pid ?? 0,
      stop: async () => {
        child.kill('SIGTERM');
        await new Promise((r) => child.once('exit', r));
        rmSync(dir, { recursive: true, force: true });
      },
    };
  };
}

/** Keeper figures: failover RTO over repeated trials, and the idle footprint. */
export async function keeperBench(root: string, trials: number): Promise<void> {
  say('== keeper: primary failure -> first write on the promoted standby (RTO) ==');
  for (const [fault, interval, failures] of [
    ['kill', 1000, 3],
    ['kill', 500, 3],
    ['freeze', 1000, 3],
    ['freeze', 500, 3],
  ] as const) {
    const rtos: number[] = [];
    const n = fault === 'kill' ? trials : Math.max(3, Math.ceil(trials / 3));
    for (let i = 0; i < n; i++) rtos.push((await rtoTrial(interval, failures, fault)).rtoMs);
    const s = summarize(rtos);
    const window = interval * failures;
    const beyond = summarize(rtos.map((r) => Math.max(0, r - window)));
    say(
      `- ${fault === 'kill' ? 'postmaster SIGKILL' : 'server frozen (SIGSTOP, like a dead host)'}, interval ${interval} ms x ${failures} (detection window ${window} ms), ${s.n} trials: ` +
        `min ${fmtMs(s.min)} / median ${fmtMs(s.median)} / max ${fmtMs(s.max)}; ` +
        `beyond window: median ${fmtMs(beyond.median)}, max ${fmtMs(beyond.max)}; ` +
        `target median <= ${fmtMs(window + 1000)}: ${s.median <= window + 1000 ? 'met' : 'MISSED'}`,
    );
  }
  const idle = await idleFootprint(spawnKeeperCli(root), 10);
  say(
    `- idle keeper process: RSS ${idle.rssMb.toFixed(1)} MB (target < 80 MB), CPU ${idle.cpuPercent.toFixed(2)}% ` +
      `(target < 1%)`,
  );
}
