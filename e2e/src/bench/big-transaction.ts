import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SandboxNode } from '@pgfleet/sandbox';
import { writeBacklog } from './backlog.js';
import { countRows, prepareBenchMesh, teardownPgfleet, waitForOriginPast } from './pgfleet-drain.js';

const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CLI = join(REPO_ROOT, 'apps/multimaster/src/cli.ts');

export interface BigTransactionResult {
  rows: number;
  /** From replicator start until the target's origin progress passed the transaction. */
  seconds: number;
  /** VmHWM of the replicator process (kB → MB), read just before it was stopped. */
  peakRssMb: number;
  /** Highest VmRSS seen by sampling every 100 ms (a cross-check of VmHWM). */
  sampledPeakRssMb: number;
  /** Exit code after SIGTERM (0 = clean shutdown); null if it had to be killed. */
  exitCode: number | null;
}

/** `VmHWM` and `VmRSS` (kB) from the text of /proc/<pid>/status; null when absent. */
export function parseProcStatus(text: string): { hwmKb: number; rssKb: number } | null {
  const hwm = /^VmHWM:\s+(\d+)\s+kB$/m.exec(text);
  const rss = /^VmRSS:\s+(\d+)\s+kB$/m.exec(text);
  if (!hwm || !rss) return null;
  return { hwmKb: Number(hwm[1]), rssKb: Number(rss[1]) };
}

function readStatus(pid: number): { hwmKb: number; rssKb: number } | null {
  try {
    return parseProcStatus(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return null;
  }
}

function waitExit(child: ChildProcess, timeoutMs: number): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      child.kill('SIGKILL');
      resolve(null);
    }, timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(t);
      resolve(code);
    });
  });
}

/**
 * The replicator, as its own process (`pgfleet-mm run`), draining one transaction of
 * `rows` rows from `source` to `target`; its memory is sampled from /proc while it works.
 */
export async function bigTransaction(
  source: SandboxNode,
  target: SandboxNode,
  rows: number,
  workDir: string,
): Promise<BigTransactionResult> {
  const nodes = [source, target];
  await prepareBenchMesh(nodes);
  // JSON is YAML; the file holds passwords, so only the owner may read it.
  const file = join(workDir, 'bench-big-tx.yaml');
  writeFileSync(
    file,
    JSON.stringify({
      nodes: nodes.map((n) => ({ name: n.name, conninfo: n.conninfo() })),
      tables: ['public.bench_rows'],
      http: { listen: false },
    }),
    { mode: 0o600 },
  );
  let child: ChildProcess | null = null;
  try {
    const backlog = await writeBacklog(source, { transactions: 1, rowsPerTransaction: rows });
    const t0 = performance.now();
    child = spawn(
      process.execPath,
      ['--conditions=source', '--import', 'tsx', CLI, 'run', '-c', file, '--log-level', 'warn'],
      { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr?.on('data', (b: Buffer) => {
      stderr = (stderr + b.toString()).slice(-4000);
    });
    const pid = child.pid as number;
    let sampledKb = 0;
    const sampler = setInterval(() => {
      const st = readStatus(pid);
      if (st && st.rssKb > sampledKb) sampledKb = st.rssKb;
    }, 100);
    let stopping = false;
    try {
      // The replicator dying on its own (out of memory, crash) fails the benchmark.
      const exited = new Promise<never>((_, reject) =>
        child?.once('exit', (code, signal) => {
          if (!stopping)
            reject(
              new Error(`replicator exited during the drain (code ${code}, signal ${signal}): ${stderr}`),
            );
        }),
      );
      exited.catch(() => {});
      await Promise.race([
        waitForOriginPast(target, `pgfleet_${source.name}`, backlog.lastTxStartLsn),
        exited,
      ]);
      const seconds = (performance.now() - t0) / 1000;
      const hwmKb = readStatus(pid)?.hwmKb ?? 0;
      clearInterval(sampler);
      stopping = true;
      child.kill('SIGTERM');
      const exitCode = await waitExit(child, 15_000);
      const got = await countRows(target);
      if (got !== rows)
        throw new Error(`bench: the big transaction left ${got} of ${rows} rows on ${target.name}`);
      return {
        rows,
        seconds,
        peakRssMb: hwmKb / 1024,
        sampledPeakRssMb: sampledKb / 1024,
        exitCode,
      };
    } finally {
      clearInterval(sampler);
    }
  } finally {
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await waitExit(child, 5000);
    }
    await teardownPgfleet(nodes);
    for (const n of nodes) await n.query('DROP TABLE IF EXISTS bench_rows');
  }
}
