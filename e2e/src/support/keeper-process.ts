import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * `pgfleet-keeper run` as a child process, the way users run it: a process we can SIGKILL or
 * SIGSTOP with its server (a frozen host), with its JSON log kept for the report.
 */

const ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../..');

export interface KeeperProcess {
  readonly name: string;
  readonly url: string;
  readonly child: ChildProcess;
  readonly log: string[];
  /** Resolves with the exit code (or signal) once the process ended. */
  readonly exit: Promise<number | string>;
  kill(signal?: NodeJS.Signals): void;
}

export interface KeeperProcessOptions {
  /** Run the built CLI (apps/keeper/dist) instead of the sources through tsx. */
  dist?: boolean;
  /** Extra CLI arguments, e.g. ['--force']. */
  args?: string[];
  /** Echo the log lines (KEEPER_E2E_LOG=1). */
  echo?: boolean;
  /** Node.js options before the entry, e.g. ['--cpu-prof', '--cpu-prof-dir=/tmp/x']. */
  nodeArgs?: string[];
}

/** Writes the config (JSON is YAML) and starts the keeper on it. */
export function startKeeperProcess(
  name: string,
  config: Record<string, unknown>,
  opts: KeeperProcessOptions = {},
): KeeperProcess & { cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), `pgfleet-keeper-${name}-`));
  const file = join(dir, 'keeper.yaml');
  writeFileSync(file, JSON.stringify(config, null, 2));
  const dist = join(ROOT, 'apps/keeper/dist/cli.js');
  const entry =
    opts.dist && existsSync(dist)
      ? [dist]
      : ['--conditions=source', '--import', 'tsx', join(ROOT, 'apps/keeper/src/cli.ts')];
  const child = spawn(
    process.execPath,
    [...(opts.nodeArgs ?? []), ...entry, 'run', '--config', file, ...(opts.args ?? [])],
    {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env },
    },
  );
  const log: string[] = [];
  let partial = '';
  const take = (d: Buffer) => {
    partial += String(d);
    const lines = partial.split('\n');
    partial = lines.pop() ?? '';
    for (const l of lines) {
      log.push(l);
      if (opts.echo) process.stdout.write(`[${name}] ${l}\n`);
    }
  };
  child.stdout?.on('data', take);
  child.stderr?.on('data', take);
  const exit = new Promise<number | string>((r) => child.once('exit', (code, sig) => r(code ?? sig ?? '?')));
  const http = (config.http as { listen?: string } | undefined)?.listen ?? '127.0.0.1:8008';
  const onExit = () => child.kill('SIGKILL');
  process.once('exit', onExit);
  return {
    name,
    url: `http://${http}`,
    child,
    log,
    exit,
    kill: (signal = 'SIGTERM') => {
      try {
        child.kill(signal);
      } catch {
        // gone
      }
    },
    cleanup: () => {
      process.off('exit', onExit);
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** GET a keeper endpoint: status code and JSON body (null when the keeper does not answer). */
export async function keeperGet(url: string, path: string): Promise<{ code: number; body: unknown } | null> {
  try {
    const res = await fetch(`${url}${path}`, { signal: AbortSignal.timeout(2000) });
    const text = await res.text();
    let body: unknown = null;
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
    return { code: res.status, body };
  } catch {
    return null;
  }
}
