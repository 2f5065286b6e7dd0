import { readdirSync, readFileSync, readlinkSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { FenceError } from './errors.js';

/**
 * The local server's processes, seen through /proc (Linux), for the fence that must work when
 * SQL cannot: a postmaster that is stopped or hung still has children that run their sessions
 * and commit, and a server whose every process is frozen writes again the moment it thaws.
 * Only a process beside the server (same host, same user or root) can do this; the keeper is.
 *
 * The postmaster's pid is the first line of <pgdata>/postmaster.pid; it is trusted only when
 * that process runs in the data directory (the postmaster chdirs there: ChangeToDataDir() in
 * src/backend/utils/init/miscinit.c), so a stale pid file never makes us signal a stranger.
 */

export type ServerProcessKind = 'client' | 'walsender' | 'auxiliary';

export interface ServerProcess {
  pid: number;
  kind: ServerProcessKind;
  /** /proc/<pid>/stat state: R running, S sleeping, T stopped, D disk wait, Z zombie... */
  state: string;
  /** The process title PostgreSQL set (ps display), e.g. "postgres: app db 10.0.0.5(40312) idle". */
  title: string;
}

export interface ServerProcesses {
  postmaster: { pid: number; state: string };
  children: ServerProcess[];
}

/** Process titles of auxiliary processes and background workers (the word after "postgres: "). */
const AUXILIARY = [
  'checkpointer',
  'background writer',
  'walwriter',
  'wal writer',
  'autovacuum launcher',
  'autovacuum worker',
  'logical replication',
  'archiver',
  'startup',
  'walreceiver',
  'walsummarizer',
  'wal summarizer',
  'stats collector',
  'io worker',
  'slotsync worker',
  'parallel worker',
  'background worker',
  'TimescaleDB',
];

/**
 * What a child of the postmaster is, from its process title. Client backends read
 * "<user> <database> <host>(<port>) <activity>" or "... [local] ...", walsenders
 * "walsender <user> <host>(<port>) ...", optionally after "<cluster_name>: ". Pure.
 */
export function classifyProcessTitle(title: string): ServerProcessKind {
  let rest = title.replace(/^postgres:\s*/, '').replace(/^postmaster:\s*/, '');
  // cluster_name, when set, comes first: "postgres: main: checkpointer"
  const named = /^[^\s:]+:\s+(.*)$/.exec(rest);
  if (named && !/^\S+ \S+ (\[local\]|\S+\(\d+\))/.test(rest)) rest = named[1]!;
  if (/^walsender\b/.test(rest)) return 'walsender';
  if (AUXILIARY.some((a) => rest.startsWith(a))) return 'auxiliary';
  if (/^\S+ \S+ (\[local\]|\S+\(\d+\)|\S+)( |$)/.test(rest)) return 'client';
  return 'auxiliary';
}

function readStat(pid: number): { state: string; ppid: number } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name is in parentheses and may contain spaces: fields start after ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: fields[0]!, ppid: Number(fields[1]) };
  } catch {
    return null;
  }
}

function readTitle(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
  } catch {
    return '';
  }
}

/** /proc state of a process (R, S, T, D, Z...), or null when it does not exist. */
export function processState(pid: number): string | null {
  return readStat(pid)?.state ?? null;
}

/**
 * The live postmaster of `pgdata`, or null when none runs there (no pid file, the process is
 * gone, or the pid now belongs to a process outside the data directory).
 */
export function postmasterPid(pgdata: string): number | null {
  let pid: number;
  try {
    pid = Number(readFileSync(join(pgdata, 'postmaster.pid'), 'utf8').split('\n')[0]);
  } catch {
    return null;
  }
  if (!Number.isInteger(pid) || pid <= 0) return null;
  const stat = readStat(pid);
  if (!stat || stat.state === 'Z') return null;
  try {
    if (realpathSync(readlinkSync(`/proc/${pid}/cwd`)) !== realpathSync(pgdata)) return null;
  } catch {
    // Gone, or no permission to read its cwd: we cannot be sure it is ours, so it is not.
    return null;
  }
  return pid;
}

/** Child pids of `pid`: /proc/<pid>/task/<pid>/children when the kernel has it, else a scan. */
function childPids(pid: number): number[] {
  try {
    // The postmaster is single-threaded, so its main task's children are all of them.
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    const out: number[] = [];
    for (const entry of readdirSync('/proc'))
      if (/^\d+$/.test(entry) && readStat(Number(entry))?.ppid === pid) out.push(Number(entry));
    return out;
  }
}

/** The postmaster of `pgdata` and its children, or null when no postmaster runs there. */
export function serverProcesses(pgdata: string): ServerProcesses | null {
  const pid = postmasterPid(pgdata);
  return pid === null ? null : processesOf(pid);
}

function processesOf(pid: number): ServerProcesses {
  const children: ServerProcess[] = [];
  for (const child of childPids(pid)) {
    const stat = readStat(child);
    if (!stat || stat.ppid !== pid || stat.state === 'Z') continue;
    const title = readTitle(child);
    children.push({ pid: child, kind: classifyProcessTitle(title), state: stat.state, title });
  }
  return { postmaster: { pid, state: readStat(pid)?.state ?? '?' }, children };
}

function signal(pid: number, sig: NodeJS.Signals, pgdata: string): boolean {
  try {
    process.kill(pid, sig);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ESRCH') return false; // exited meanwhile
    throw new FenceError(
      'FENCE_FAILED',
      `cannot send ${sig} to server process ${pid} of ${pgdata}: ${(err as Error).message} (run the keeper as the server's OS user or root)`,
      { pid, signal: sig, pgdata, errno: code },
      { cause: err },
    );
  }
}

/**
 * SIGTERM to every client backend of the server in `pgdata`, directly (no SQL, no postmaster
 * involved): what pg_terminate_backend() does, for when no session can run it. Walsenders are
 * spared so the standby receives every byte already written. A stopped process acts on it
 * when continued, before it reads its next command. Returns the pids signalled.
 */
export function terminateClientBackends(pgdata: string): number[] {
  const procs = serverProcesses(pgdata);
  if (!procs) return [];
  const done: number[] = [];
  for (const p of procs.children)
    if (p.kind === 'client' && signal(p.pid, 'SIGTERM', pgdata)) done.push(p.pid);
  return done;
}

/**
 * Stops the server in `pgdata` hard, the last resort of a fence (self-STONITH): SIGSTOP the
 * postmaster so it forks nothing more, SIGKILL every child, then the postmaster. SIGKILL
 * works on stopped processes too. PostgreSQL recovers from this like from a power loss (crash
 * recovery at the next start). Returns the pids killed; [] when no server runs there.
 */
export function killServer(pgdata: string): number[] {
  const pid = postmasterPid(pgdata);
  if (pid === null) return [];
  signal(pid, 'SIGSTOP', pgdata);
  const killed: number[] = [];
  for (const child of childPids(pid)) if (signal(child, 'SIGKILL', pgdata)) killed.push(child);
  if (signal(pid, 'SIGKILL', pgdata)) killed.push(pid);
  return killed;
}
