import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { get } from 'node:http';
import { get as httpsGet } from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import { SandboxEtcdError } from './errors.js';
import type { EtcdTlsClient } from './etcd-tls.js';
import type { ProcessRegistry } from './process-registry.js';

export interface EtcdMemberInit {
  name: string;
  binary: string;
  dataDir: string;
  logFile: string;
  clientPort: number;
  peerPort: number;
  /** Every other flag (cluster membership, timings), the same on every start. */
  args: string[];
  registry: ProcessRegistry;
  onStart: () => void;
  /** Client side of TLS when the member serves https (its health check uses it). */
  tls?: EtcdTlsClient;
}

/** One real etcd server process on 127.0.0.1, started and faulted by an EtcdCluster. */
export class EtcdMember {
  readonly name: string;
  readonly dataDir: string;
  readonly logFile: string;
  /** The member's own client port (no proxy in between). */
  readonly clientPort: number;
  readonly peerPort: number;
  private readonly init: EtcdMemberInit;
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private paused = false;

  constructor(init: EtcdMemberInit) {
    this.init = init;
    this.name = init.name;
    this.dataDir = init.dataDir;
    this.logFile = init.logFile;
    this.clientPort = init.clientPort;
    this.peerPort = init.peerPort;
  }

  get pid(): number | undefined {
    return this.child?.exitCode === null && this.child.signalCode === null ? this.child.pid : undefined;
  }

  get isRunning(): boolean {
    return this.pid !== undefined;
  }

  get isPaused(): boolean {
    return this.paused;
  }

  /** The direct client URL (tests that must bypass the per-client proxies use it). */
  get clientUrl(): string {
    return `${this.init.tls ? 'https' : 'http'}://127.0.0.1:${this.clientPort}`;
  }

  /** Spawns the server; an existing data directory makes it rejoin with its old identity. */
  spawn(): void {
    if (this.isRunning) return;
    const logFd = openSync(this.logFile, 'a');
    // etcd reads ETCD_* variables as flags: none of the caller's may leak into a test cluster.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ETCD_')));
    const child = spawn(this.init.binary, this.init.args, {
      detached: true,
      stdio: ['ignore', logFd, logFd],
      env,
    });
    closeSync(logFd);
    child.unref();
    this.child = child;
    this.paused = false;
    if (child.pid === undefined)
      throw new SandboxEtcdError(`etcd ${this.name} did not start`, this.details());
    this.init.registry.add(child.pid);
    this.exited = new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.once('error', () => resolve());
    });
    this.init.onStart();
  }

  /** True when the member answers /health with a leader and no alarm. */
  async isHealthy(timeoutMs = 1_000): Promise<boolean> {
    if (!this.isRunning || this.paused) return false;
    return new Promise<boolean>((resolve) => {
      const tls = this.init.tls;
      const req = (tls ? httpsGet : get)(
        `${this.clientUrl}/health`,
        { timeout: timeoutMs, ...(tls ?? {}) },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => {
            body += c;
          });
          res.on('end', () => resolve(res.statusCode === 200 && /"health"\s*:\s*"true"/.test(body)));
          res.on('error', () => resolve(false));
        },
      );
      req.on('timeout', () => req.destroy());
      req.on('error', () => resolve(false));
    });
  }

  async waitHealthy(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!this.isRunning)
        throw new SandboxEtcdError(`etcd ${this.name} exited during start`, this.details());
      if (await this.isHealthy()) return;
      await sleep(50);
    }
    throw new SandboxEtcdError(`etcd ${this.name} not healthy after ${timeoutMs} ms`, this.details());
  }

  /** SIGKILL, like a crash of the host's etcd: no goodbye to the peers. */
  async kill(): Promise<void> {
    await this.signal('SIGKILL');
  }

  /** SIGTERM: etcd shuts down cleanly (hands over leadership if it leads). */
  async stop(): Promise<void> {
    await this.signal('SIGTERM');
  }

  /** SIGSTOP: the member freezes with its sockets open, a hung host as its peers see it. */
  pause(): void {
    const pid = this.pid;
    if (pid === undefined) throw new SandboxEtcdError(`etcd ${this.name}: cannot pause, not running`);
    process.kill(-pid, 'SIGSTOP');
    this.paused = true;
  }

  resume(): void {
    const pid = this.pid;
    if (pid === undefined) return;
    process.kill(-pid, 'SIGCONT');
    this.paused = false;
  }

  logTail(lines = 20): string {
    if (!existsSync(this.logFile)) return '';
    return readFileSync(this.logFile, 'utf8').split('\n').slice(-lines).join('\n');
  }

  private async signal(sig: NodeJS.Signals): Promise<void> {
    const pid = this.pid;
    if (pid === undefined) return;
    if (this.paused) this.resume();
    process.kill(-pid, sig);
    const timeout = sleep(15_000).then(() => 'timeout' as const);
    if ((await Promise.race([this.exited.then(() => 'exited' as const), timeout])) === 'timeout') {
      process.kill(-pid, 'SIGKILL');
      await this.exited;
    }
    this.init.registry.remove(pid);
  }

  private details(): Record<string, unknown> {
    return { member: this.name, clientPort: this.clientPort, dataDir: this.dataDir, logTail: this.logTail() };
  }
}
