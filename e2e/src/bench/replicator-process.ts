import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** A `pgfleet-mm run` process, as users run it: the built CLI when present, else the sources. */
export interface ReplicatorProcess {
  pid: number;
  /** VmHWM (peak RSS) so far, MB. */
  peakRssMb(): number;
  /** SIGTERM, wait for a clean exit (SIGKILL after 15 s); returns the exit code. */
  stop(): Promise<number | null>;
}

export function spawnReplicator(config: Record<string, unknown>): ReplicatorProcess {
  const dir = mkdtempSync(join(tmpdir(), 'pgfleet-bench-mm-'));
  const file = join(dir, 'mesh.yaml');
  // JSON is YAML; the file holds passwords, so only the owner may read it.
  writeFileSync(file, JSON.stringify({ ...config, http: { listen: false } }), { mode: 0o600 });
  const dist = join(REPO_ROOT, 'apps/multimaster/dist/cli.js');
  // BENCH_REPLICATOR_CPU_PROF=<dir>: the replicator writes a .cpuprofile there when it exits.
  const profDir = process.env.BENCH_REPLICATOR_CPU_PROF;
  const prof = profDir ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [];
  const args = existsSync(dist)
    ? [...prof, dist, 'run', '-c', file, '--log-level', 'warn']
    : [
        ...prof,
        '--conditions=source',
        '--import',
        'tsx',
        join(REPO_ROOT, 'apps/multimaster/src/cli.ts'),
        'run',
        '-c',
        file,
      ];
  const child: ChildProcess = spawn(process.execPath, args, {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'ignore', process.env.PGFLEET_BENCH_LOG ? 'inherit' : 'ignore'],
  });
  const pid = child.pid as number;
  return {
    pid,
    peakRssMb() {
      try {
        const m = /^VmHWM:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
        return m ? Number(m[1]) / 1024 : Number.NaN;
      } catch {
        return Number.NaN;
      }
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const code = await new Promise<number | null>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve(child.exitCode);
        const t = setTimeout(() => {
          child.kill('SIGKILL');
          resolve(null);
        }, 15_000);
        child.once('exit', (c) => {
          clearTimeout(t);
          resolve(c);
        });
      });
      rmSync(dir, { recursive: true, force: true });
      return code;
    },
  };
}
