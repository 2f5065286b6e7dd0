import { type ChildProcess, spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { SandboxNode } from '@pgfleet/sandbox';

const ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../..');
const CLI = ['--conditions=source', '--import', 'tsx', 'apps/multimaster/src/cli.ts'];

/**
 * `pgfleet-mm run` as a child process. `ready` settles once it logged that the replicator
 * starts (config loaded, modules up): kill times count from there, so that on a loaded
 * machine, where starting Node and tsx alone can take seconds, kills still land in the
 * replicator's own start-up and mid-stream rather than all before it ran at all.
 */
export function spawnRun(configFile: string): { child: ChildProcess; ready: Promise<void> } {
  const child = spawn(process.execPath, [...CLI, 'run', '-c', configFile, '--log-level', 'info'], {
    cwd: ROOT,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const ready = new Promise<void>((resolve) => {
    let seen = '';
    child.stderr?.on('data', (d: Buffer) => {
      if (process.env.PGFLEET_TEST_LOG) process.stderr.write(d);
      seen = (seen + d.toString('utf8')).slice(-4096);
      if (seen.includes('replicator starting')) resolve();
    });
    child.once('exit', () => resolve());
  });
  return { child, ready };
}

export function exited(child: ChildProcess): Promise<number | string | null> {
  if (child.exitCode !== null || child.signalCode !== null)
    return Promise.resolve(child.exitCode ?? child.signalCode);
  return new Promise((res) => child.once('exit', (code, sig) => res(code ?? sig)));
}

/**
 * Starts `pgfleet-mm run` and SIGKILLs it after a random lifetime (up to `maxLifeMs` from
 * its start, so some kills land in its start-up and some mid-stream), again and again,
 * until `kills` kills were made or `budgetMs` passed. The budget only ends a run whose
 * replicators cannot even start (a broken build). Returns the number of kills.
 */
export async function killRepeatedly(
  configFile: string,
  children: Set<ChildProcess>,
  o: { kills: number; budgetMs: number; maxLifeMs: number },
): Promise<number> {
  let kills = 0;
  const started = Date.now();
  while (kills < o.kills && Date.now() - started < o.budgetMs) {
    const { child, ready } = spawnRun(configFile);
    children.add(child);
    await ready;
    await sleep(Math.floor(Math.random() * o.maxLifeMs));
    child.kill('SIGKILL');
    const how = await exited(child);
    children.delete(child);
    if (how !== 'SIGKILL')
      throw new Error(`the replicator ended by itself (${String(how)}) before it was killed`);
    kills++;
  }
  return kills;
}

/**
 * End LSN of the last transaction a node committed itself (no replication origin) on the
 * tables of `publication`, read through a second logical slot created before the load.
 */
export async function lastLocalCommitEnd(
  node: SandboxNode,
  slot: string,
  publication: string,
): Promise<string> {
  const rows = await node.query<{ data: Buffer }>(
    `SELECT data FROM pg_logical_slot_peek_binary_changes($1, NULL, NULL, 'proto_version', '1', 'publication_names', $2)`,
    [slot, publication],
  );
  let fromOrigin = false;
  let last: bigint | null = null;
  for (const { data } of rows) {
    const tag = String.fromCharCode(data[0] as number);
    if (tag === 'B') fromOrigin = false;
    else if (tag === 'O') fromOrigin = true;
    else if (tag === 'C' && !fromOrigin) last = data.readBigUInt64BE(10); // 'C', flags, commit_lsn, end_lsn
  }
  if (last === null) throw new Error(`no local transaction decoded on ${node.name}`);
  return `${(last >> 32n).toString(16).toUpperCase()}/${(last & 0xffffffffn).toString(16).toUpperCase()}`;
}
