import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FAULTS, type FaultName } from '../support/keeper-trial.js';
import { keeperEtcdBench } from './keeper-etcd.js';
import { keeperFaultBench } from './keeper-faults.js';
import { idleFootprint } from './keeper-footprint.js';

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

const PARTS = ['pair', 'etcd', 'all'] as const;

/**
 * Keeper figures: every fault of issue 9 on a pair + witness through a real HAProxy, then
 * issue 10's faults on 3 nodes on etcd, `trials` times on each PostgreSQL major of
 * PGFLEET_PG_VERSIONS, each with its idle footprint. BENCH_KEEPER=pair|etcd|all (default all)
 * picks the part; BENCH_FAULTS narrows the pair's faults.
 */
export async function keeperBench(root: string, trials: number): Promise<void> {
  const majors = (process.env.PGFLEET_PG_VERSION ?? process.env.PGFLEET_PG_VERSIONS ?? '15,17')
    .split(',')
    .map((v) => Number(v.trim()))
    .filter((v) => v > 0);
  const part = (process.env.BENCH_KEEPER ?? 'all').trim();
  if (!(PARTS as readonly string[]).includes(part))
    throw new Error(`BENCH_KEEPER: unknown part '${part}' (one of ${PARTS.join(', ')})`);
  if (part !== 'etcd') await pairBench(root, majors, trials);
  if (part !== 'pair') await keeperEtcdBench(majors, trials);
}

async function pairBench(root: string, majors: number[], trials: number): Promise<void> {
  const faults = process.env.BENCH_FAULTS
    ? (process.env.BENCH_FAULTS.split(',').map((f) => f.trim()) as FaultName[])
    : (Object.keys(FAULTS) as FaultName[]);
  for (const f of faults)
    if (!(f in FAULTS))
      throw new Error(`BENCH_FAULTS: unknown fault ${f} (one of ${Object.keys(FAULTS).join(', ')})`);
  await keeperFaultBench(majors, trials, faults);
  const idle = await idleFootprint(spawnKeeperCli(root), 10);
  say(
    `- idle keeper process (pair): RSS ${idle.rssMb.toFixed(1)} MB (target < 80 MB), CPU ${idle.cpuPercent.toFixed(2)}% ` +
      `(target < 1%)`,
  );
}
