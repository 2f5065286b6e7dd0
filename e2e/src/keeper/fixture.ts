import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { type KeeperHandle, parseConfig, startKeeper } from '@pgfleet/keeper';
import { freePort, Sandbox, type SandboxNode } from '@pgfleet/sandbox';
import pg from 'pg';
import pino from 'pino';
import type { ClusterNode, ClusterProvider } from '../providers/types.js';
import { eventually } from '../support/eventually.js';

/**
 * Shared pieces of the keeper scenarios (issue 3): keepers in-process with captured logs and
 * hook recorders, keepers as `pgfleet-keeper` child processes, HTTP helpers, a background
 * writer that remembers every acknowledged id.
 */

export const ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../..');
export const TOKEN = 'e2e-keeper-token';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Waits until `fn` returns something truthy (errors count as "not yet"). */
export async function until<T>(
  what: string,
  fn: () => Promise<T | undefined | false | null> | T | undefined | false | null,
  timeoutMs = 20_000,
): Promise<T> {
  const v = await eventually(what, async () => fn(), Boolean, { timeoutMs, intervalMs: 20 });
  return v as T;
}

export async function httpStatus(url: string): Promise<number> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  await res.arrayBuffer();
  return res.status;
}

export async function httpText(url: string): Promise<string> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  return res.text();
}

export async function syncNames(node: Pick<ClusterNode, 'query'>): Promise<string> {
  const [row] = await node.query<{ s: string }>("SELECT current_setting('synchronous_standby_names') AS s");
  return row?.s ?? '?';
}

export interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

/** A pino logger whose JSON lines are kept for assertions (and echoed with KEEPER_E2E_LOG=1). */
export function capturedLogger(name: string) {
  const lines: LogLine[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      for (const text of String(chunk).split('\n')) {
        if (!text) continue;
        lines.push(JSON.parse(text) as LogLine);
        if (process.env.KEEPER_E2E_LOG) process.stdout.write(`[${name}] ${text}\n`);
      }
      cb();
    },
  });
  return { logger: pino({ level: 'debug' }, stream), lines };
}

/** Hook commands that write each run's PGFLEET_* environment to its own file. */
export function hookRecorder() {
  const dir = mkdtempSync(join(tmpdir(), 'pgfleet-e2e-hooks-'));
  const record = (event: string) =>
    `f=${dir}/${event}.$$.$(date +%s%N); env | grep '^PGFLEET_' | sort > "$f.tmp" && mv "$f.tmp" "$f.env"`;
  return {
    dir,
    hooks: { onPromote: record('promote'), onDegrade: record('degrade'), onRestore: record('restore') },
    /** The environments of every completed run of `event`, oldest first. */
    runs(event: string): Array<Record<string, string>> {
      return readdirSync(dir)
        .filter((f) => f.startsWith(`${event}.`) && f.endsWith('.env'))
        .sort()
        .map((f) => {
          const env: Record<string, string> = {};
          for (const line of readFileSync(join(dir, f), 'utf8').split('\n')) {
            const eq = line.indexOf('=');
            if (eq > 0) env[line.slice(0, eq)] = line.slice(eq + 1);
          }
          return env;
        });
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** What a keeper config needs of a node: its name and addresses (sandbox or provider node). */
export type PairNode = Pick<ClusterNode, 'name' | 'conninfo'>;

export interface PairOptions {
  intervalMs: number;
  failures: number;
  connectTimeoutMs: number;
  syncStandbyNames?: string;
  /** Raw config keys for both keepers (maxLagOnFailover, syncRestoreLag, startupGrace...). */
  extra?: Record<string, unknown>;
  hooks?: Record<string, string>;
  /** Give each keeper the other's URL (fast path, notices). Default true. */
  fastPath?: boolean;
}

/** Raw keeper configs for primary `a` and standby `b`, each reaching the other through its own proxy. */
export async function pairConfigs(a: PairNode, b: PairNode, o: PairOptions) {
  const [portA, portB] = [await freePort(), await freePort()];
  const fastPath = o.fastPath ?? true;
  const common = {
    interval: `${o.intervalMs}ms`,
    failures: o.failures,
    connectTimeout: `${o.connectTimeoutMs}ms`,
    syncStandbyNames: o.syncStandbyNames ?? '',
    log: { level: 'debug' },
    ...(o.hooks ? { hooks: o.hooks } : {}),
    ...(o.extra ?? {}),
  };
  const one = (self: PairNode, other: PairNode, port: number, otherPort: number) => ({
    ...common,
    node: { name: self.name, conninfo: self.conninfo() },
    peer: {
      name: other.name,
      conninfo: other.conninfo({ from: `keeper-${self.name}` }),
      ...(fastPath ? { keeperUrl: `http://127.0.0.1:${otherPort}` } : {}),
    },
    http: { listen: `127.0.0.1:${port}`, token: TOKEN },
  });
  return { a: one(a, b, portA, portB), b: one(b, a, portB, portA) };
}

/**
 * A sandbox with primary `a` (`setupSql` run on it first), its streaming standby `b`, and the
 * raw keeper configs for both (see pairConfigs). The sandbox is destroyed if any step fails.
 */
export async function sandboxPair(name: string, setupSql: string, o: PairOptions) {
  const sb = await Sandbox.create({ name });
  try {
    const a = await sb.startNode('a');
    await a.query(setupSql);
    const b = await sb.createStandby('b', a);
    const raw = await pairConfigs(a, b, o);
    return { sb, a, b, raw };
  } catch (err) {
    await sb.destroy();
    throw err;
  }
}

/**
 * The same pair from a provider (sandbox or containers), for scenarios that run on both: a
 * primary `a` (`setupSql` run on it first), its streaming standby `b`, and the keeper configs.
 * The provider is destroyed if any step fails.
 */
export async function providerPair(provider: ClusterProvider, setupSql: string, o: PairOptions) {
  try {
    const a = await provider.startPrimary('a');
    await a.query(setupSql);
    const b = await provider.startStandby('b', a);
    const raw = await pairConfigs(a, b, o);
    return { a, b, raw };
  } catch (err) {
    await provider.destroy();
    throw err;
  }
}

export interface RunningKeeper {
  handle: KeeperHandle;
  lines: LogLine[];
}

export async function startInProcess(name: string, raw: Record<string, unknown>): Promise<RunningKeeper> {
  const { logger, lines } = capturedLogger(name);
  const handle = await startKeeper(parseConfig(raw), { logger });
  return { handle, lines };
}

/** Stops the in-process keepers that were started, then the sandbox. */
export async function stopPair(
  sb: { destroy(): Promise<void> } | undefined,
  keepers: Array<RunningKeeper | undefined>,
) {
  await Promise.all(keepers.map((k) => k?.handle.stop()));
  await sb?.destroy();
}

/** Waits until `a` runs with synchronous_standby_names = `sync` and b's keeper sees itself synchronous. */
export function untilSyncPair(what: string, a: Pick<ClusterNode, 'query'>, kb: RunningKeeper, sync: string) {
  return until(
    what,
    async () => (await syncNames(a)) === sync && kb.handle.status().sync.observation === 'sync',
  );
}

/** `pgfleet-keeper <args>` straight from the TypeScript sources, as a child process. */
export function spawnCli(args: string[], env: NodeJS.ProcessEnv = {}): CliProcess {
  const child = spawn(
    process.execPath,
    ['--conditions=source', '--import', 'tsx', join(ROOT, 'apps/keeper/src/cli.ts'), ...args],
    { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const out = { stdout: '', stderr: '' };
  child.stdout?.on('data', (d) => {
    out.stdout += String(d);
  });
  // Logs: JSON lines on stderr (a pipe, so the keeper's auto log format is JSON).
  child.stderr?.on('data', (d) => {
    out.stderr += String(d);
    if (process.env.KEEPER_E2E_LOG) process.stderr.write(String(d));
  });
  const exit = new Promise<number | NodeJS.Signals>((res) =>
    child.once('exit', (code, sig) => res(code ?? (sig as NodeJS.Signals))),
  );
  return { child, out, exit };
}

export interface CliProcess {
  child: ChildProcess;
  out: { stdout: string; stderr: string };
  exit: Promise<number | NodeJS.Signals>;
}

/** Runs a CLI command to its end (bounded), returning exit code and output. */
export async function runCli(args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 30_000) {
  const p = spawnCli(args, env);
  const timer = setTimeout(() => p.child.kill('SIGKILL'), timeoutMs);
  const code = await p.exit;
  clearTimeout(timer);
  return { code, stdout: p.out.stdout, stderr: p.out.stderr };
}

/** Writes a YAML config (JSON is YAML) into a fresh temp dir; returns its path. */
export function writeConfig(
  raw: Record<string, unknown>,
  dir = mkdtempSync(join(tmpdir(), 'pgfleet-e2e-keeper-')),
) {
  const file = join(dir, `keeper-${String((raw.node as { name?: string })?.name ?? 'x')}.yaml`);
  writeFileSync(file, JSON.stringify(raw, null, 2));
  return file;
}

/**
 * Commits single-row inserts on `node` as fast as it can over one session and remembers every
 * id whose COMMIT was acknowledged. An error (the server died) ends it.
 */
export function backgroundWriter(node: SandboxNode, table: string) {
  const acked: number[] = [];
  let stop = false;
  let error: unknown;
  const done = (async () => {
    const client = new pg.Client({ ...node.facts(), connectionTimeoutMillis: 5000 });
    client.on('error', () => {});
    await client.connect();
    try {
      for (let id = 1; !stop; id++) {
        await client.query(`INSERT INTO ${table} (id) VALUES ($1)`, [id]);
        acked.push(id);
      }
    } catch (err) {
      error = err;
    } finally {
      await client.end().catch(() => {});
    }
  })();
  return {
    acked,
    get error() {
      return error;
    },
    async stop() {
      stop = true;
      await done;
    },
    done,
  };
}
