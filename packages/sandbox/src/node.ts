import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { SandboxNodeError } from './errors.js';
import { childPids } from './proc.js';
import type { ProcessRegistry } from './process-registry.js';
import type { RunAs } from './run-as.js';
import type { ConnectionFacts, PgInstallation } from './types.js';

/** How a node is reached by a party: the proxies live in the owning Sandbox. */
export interface NodeRouting {
  portFor(node: SandboxNode, from: string | undefined): number;
  /** Called when the server (re)starts: stale proxied sessions are reset, like a real RST. */
  onRestart(node: SandboxNode): void;
}

export interface SandboxNodeInit {
  name: string;
  dataDir: string;
  port: number;
  password: string;
  installation: PgInstallation;
  runAs: RunAs | undefined;
  routing: NodeRouting;
  registry: ProcessRegistry;
}

export type StopMode = 'smart' | 'fast' | 'immediate';

const STOP_SIGNAL: Record<StopMode, NodeJS.Signals> = {
  smart: 'SIGTERM',
  fast: 'SIGINT',
  immediate: 'SIGQUIT',
};

/** One real PostgreSQL server on 127.0.0.1, started and faulted by the sandbox. */
export class SandboxNode {
  readonly name: string;
  readonly dataDir: string;
  readonly port: number;
  readonly installation: PgInstallation;
  readonly user = 'postgres';
  readonly database = 'postgres';
  readonly logFile: string;
  private readonly password: string;
  private readonly runAs: RunAs | undefined;
  private readonly routing: NodeRouting;
  private readonly registry: ProcessRegistry;
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private paused = false;

  constructor(init: SandboxNodeInit) {
    this.name = init.name;
    this.dataDir = init.dataDir;
    this.port = init.port;
    this.password = init.password;
    this.installation = init.installation;
    this.runAs = init.runAs;
    this.routing = init.routing;
    this.registry = init.registry;
    this.logFile = join(init.dataDir, '..', `${init.name}.log`);
  }

  get major(): number {
    return this.installation.major;
  }

  /** PID of the postmaster while it runs. */
  get pid(): number | undefined {
    return this.child?.exitCode === null && this.child.signalCode === null ? this.child.pid : undefined;
  }

  get isRunning(): boolean {
    return this.pid !== undefined;
  }

  get isPaused(): boolean {
    return this.paused;
  }

  /** Connection facts, direct or through the proxy dedicated to party `from`. */
  facts(opts: { from?: string; database?: string } = {}): ConnectionFacts {
    return {
      host: '127.0.0.1',
      port: this.routing.portFor(this, opts.from),
      user: this.user,
      password: this.password,
      database: opts.database ?? this.database,
    };
  }

  /** libpq key=value conninfo (the password is a random hex string: no quoting needed). */
  conninfo(opts: { from?: string; database?: string; extra?: Record<string, string> } = {}): string {
    const f = this.facts(opts);
    const extra = Object.entries(opts.extra ?? {}).map(([k, v]) => ` ${k}=${v}`);
    return `host=${f.host} port=${f.port} user=${f.user} password=${f.password} dbname=${f.database}${extra.join('')}`;
  }

  uri(opts: { from?: string; database?: string } = {}): string {
    const f = this.facts(opts);
    return `postgresql://${f.user}:${f.password}@${f.host}:${f.port}/${encodeURIComponent(f.database)}`;
  }

  /** Runs one statement on a fresh connection (direct, not through a proxy) and returns its rows. */
  async query<R extends Record<string, unknown> = Record<string, unknown>>(
    sql: string,
    params: unknown[] = [],
    opts: { database?: string; timeoutMs?: number } = {},
  ): Promise<R[]> {
    const client = new pg.Client({
      ...this.facts({ database: opts.database }),
      connectionTimeoutMillis: opts.timeoutMs ?? 10_000,
      statement_timeout: opts.timeoutMs ?? 60_000,
    });
    client.on('error', () => {});
    await client.connect();
    try {
      const res = await client.query(sql, params);
      return res.rows as R[];
    } finally {
      await client.end().catch(() => {});
    }
  }

  /** Starts the server and waits until it accepts connections (a standby: until consistent). */
  async start(opts: { timeoutMs?: number; waitReady?: boolean } = {}): Promise<void> {
    if (this.isRunning) return;
    await this.waitForOldProcesses();
    const logFd = openSync(this.logFile, 'a');
    const child = spawn(join(this.installation.binDir, 'postgres'), ['-D', this.dataDir], {
      detached: true,
      stdio: ['ignore', logFd, logFd],
      ...(this.runAs ? { uid: this.runAs.uid, gid: this.runAs.gid } : {}),
      env: { ...process.env, LC_ALL: 'C' },
    });
    closeSync(logFd);
    child.unref();
    this.child = child;
    this.paused = false;
    const pid = child.pid;
    if (pid === undefined)
      throw new SandboxNodeError(`node ${this.name}: postgres did not start`, this.logDetails());
    this.registry.add(pid);
    this.exited = new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.once('error', () => resolve());
    });
    this.routing.onRestart(this);
    if (opts.waitReady !== false) await this.waitReady(opts.timeoutMs ?? 60_000);
  }

  /** Polls with real connections until the server answers `SELECT 1`. */
  async waitReady(timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let lastError: unknown;
    while (Date.now() < deadline) {
      if (!this.isRunning) {
        throw new SandboxNodeError(`node ${this.name}: postgres exited during start`, this.logDetails());
      }
      try {
        await this.query('SELECT 1', [], { timeoutMs: 2_000 });
        return;
      } catch (err) {
        lastError = err;
        await sleep(50);
      }
    }
    throw new SandboxNodeError(
      `node ${this.name}: not ready after ${timeoutMs} ms (${String((lastError as Error)?.message ?? lastError)})`,
      this.logDetails(),
    );
  }

  /** Stops the postmaster with pg_ctl's semantics for `mode`, and waits until it is gone. */
  async stop(mode: StopMode = 'fast', timeoutMs = 60_000): Promise<void> {
    const pid = this.pid;
    if (pid === undefined) return;
    if (this.paused) this.resume();
    process.kill(pid, STOP_SIGNAL[mode]);
    await this.waitExit(timeoutMs);
    await this.waitForOldProcesses();
  }

  /** SIGKILL of the postmaster only, like a crash: backends notice and exit on their own. */
  async kill(): Promise<void> {
    const pid = this.pid;
    if (pid === undefined) return;
    if (this.paused) this.resume();
    process.kill(pid, 'SIGKILL');
    await this.waitExit(10_000);
  }

  async restart(mode: StopMode = 'fast'): Promise<void> {
    await this.stop(mode);
    await this.start();
  }

  /**
   * SIGSTOP of the whole server, like a frozen host: the postmaster first (so it forks nothing
   * more), then every child. Each child of a postmaster leads its own process group
   * (InitPostmasterChild calls setsid(), src/backend/utils/init/miscinit.c), so a signal to the
   * postmaster's group alone would stop only the postmaster and leave every session running.
   * Sockets stay open.
   */
  pause(): void {
    const pid = this.pid;
    if (pid === undefined) throw new SandboxNodeError(`node ${this.name}: cannot pause, not running`);
    process.kill(-pid, 'SIGSTOP');
    for (const child of childPids(pid)) signalQuietly(child, 'SIGSTOP');
    this.paused = true;
  }

  /** SIGSTOP of the postmaster alone: no new connection is served, sessions go on. */
  pausePostmaster(): void {
    const pid = this.pid;
    if (pid === undefined) throw new SandboxNodeError(`node ${this.name}: cannot pause, not running`);
    process.kill(pid, 'SIGSTOP');
    this.paused = true;
  }

  /** SIGCONT to the server's processes (after pause() or pausePostmaster()). */
  resume(): void {
    const pid = this.pid;
    if (pid === undefined) return;
    for (const child of childPids(pid)) signalQuietly(child, 'SIGCONT');
    process.kill(-pid, 'SIGCONT');
    this.paused = false;
  }

  /** Appends settings to postgresql.auto.conf-free postgresql.conf; takes effect on reload/restart. */
  writeSettings(settings: Record<string, string | number | boolean>): void {
    const lines = Object.entries(settings).map(([k, v]) => `${k} = ${renderSetting(v)}`);
    const conf = join(this.dataDir, 'postgresql.conf');
    writeFileSync(conf, `${readFileSync(conf, 'utf8')}\n${lines.join('\n')}\n`);
  }

  /** Last lines of the server log, for error messages. */
  logTail(lines = 30): string {
    if (!existsSync(this.logFile)) return '';
    return readFileSync(this.logFile, 'utf8').split('\n').slice(-lines).join('\n');
  }

  private logDetails(): Record<string, unknown> {
    return { node: this.name, port: this.port, dataDir: this.dataDir, logTail: this.logTail() };
  }

  private async waitExit(timeoutMs: number): Promise<void> {
    const timer = sleep(timeoutMs).then(() => 'timeout' as const);
    const res = await Promise.race([this.exited.then(() => 'exited' as const), timer]);
    if (res === 'timeout') {
      throw new SandboxNodeError(
        `node ${this.name}: postmaster did not exit within ${timeoutMs} ms`,
        this.logDetails(),
      );
    }
  }

  /**
   * After a SIGKILL the postmaster's children linger briefly and still hold the shared
   * memory segment; a new postmaster refuses to start until they are gone
   * ("pre-existing shared memory block is still in use").
   */
  private async waitForOldProcesses(timeoutMs = 30_000): Promise<void> {
    const pidFile = join(this.dataDir, 'postmaster.pid');
    const deadline = Date.now() + timeoutMs;
    const oldPid = this.child?.pid;
    while (Date.now() < deadline) {
      if (oldPid === undefined || !processGroupAlive(oldPid)) {
        if (oldPid !== undefined) this.registry.remove(oldPid);
        return;
      }
      await sleep(25);
    }
    throw new SandboxNodeError(
      `node ${this.name}: old server processes still alive after ${timeoutMs} ms (${pidFile})`,
      this.logDetails(),
    );
  }
}

export function renderSetting(v: string | number | boolean): string {
  if (typeof v === 'boolean') return v ? 'on' : 'off';
  if (typeof v === 'number') return String(v);
  return `'${v.replaceAll("'", "''")}'`;
}

function signalQuietly(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // exited meanwhile
  }
}

function processGroupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}
