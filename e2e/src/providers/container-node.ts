import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { exitedReason, type HostAddress, type RuntimeContainer, waitForSql } from './postgres-container.js';
import type { ClusterNode } from './types.js';

/** How a node is reached by a party: resolved by the provider, which owns networks and proxies. */
export interface ContainerRouting {
  address(node: ContainerNode, from: string | undefined): { host: string; port: number };
  restarted(node: ContainerNode): void;
}

const STOP_SIGNAL = { fast: 'SIGINT', immediate: 'SIGQUIT' } as const;

/**
 * One PostgreSQL server in a container. The postmaster is the container's PID 1 (the
 * entrypoint execs it), so signals to the container are signals to the postmaster:
 * SIGINT is a fast shutdown, SIGQUIT an immediate one (PostgreSQL docs, "Shutting Down the
 * Server"), and SIGKILL takes the whole container down at once, like a host crash.
 */
export class ContainerNode implements ClusterNode {
  constructor(
    readonly name: string,
    readonly major: number,
    readonly container: RuntimeContainer,
    readonly addr: HostAddress,
    /** Its address on its own network, where other containers reach it. */
    readonly ip: string,
    private readonly routing: ContainerRouting,
  ) {}

  conninfo(opts: { from?: string } = {}): string {
    const { host, port } = this.routing.address(this, opts.from);
    return `host=${host} port=${port} user=${this.addr.user} password=${this.addr.password} dbname=${this.addr.database}`;
  }

  uri(opts: { from?: string } = {}): string {
    const { host, port } = this.routing.address(this, opts.from);
    return `postgresql://${this.addr.user}:${this.addr.password}@${host}:${port}/${encodeURIComponent(this.addr.database)}`;
  }

  async query<R extends Record<string, unknown>>(
    sql: string,
    params: unknown[] = [],
    opts: { timeoutMs?: number } = {},
  ): Promise<R[]> {
    const client = new pg.Client({
      host: '127.0.0.1',
      ...this.addr,
      connectionTimeoutMillis: opts.timeoutMs ?? 10_000,
      statement_timeout: opts.timeoutMs ?? 60_000,
    });
    client.on('error', () => {});
    await client.connect();
    try {
      return (await client.query(sql, params)).rows as R[];
    } finally {
      await client.end().catch(() => {});
    }
  }

  async isRunning(): Promise<boolean> {
    return (await exitedReason(this.container)) === undefined;
  }

  async kill(): Promise<void> {
    await this.signal('SIGKILL', 30_000);
  }

  async stop(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    await this.signal(STOP_SIGNAL[mode], 60_000);
  }

  async start(): Promise<void> {
    if (await this.isRunning()) return;
    await this.container.start();
    this.routing.restarted(this);
    await waitForSql(this.addr, 120_000, () => exitedReason(this.container));
  }

  async pause(): Promise<void> {
    await this.container.pause();
  }

  async resume(): Promise<void> {
    await this.container.unpause();
  }

  /** Sends `signal` to PID 1 (the postmaster) and waits until the container has exited. */
  private async signal(signal: string, timeoutMs: number): Promise<void> {
    if (!(await this.isRunning())) return;
    const info = await this.container.inspect();
    // A frozen container cannot act on a signal; thaw it first, as SIGCONT would.
    if (info.State.Paused) await this.container.unpause();
    await this.container.kill({ signal });
    const deadline = Date.now() + timeoutMs;
    while (await this.isRunning()) {
      if (Date.now() > deadline)
        throw new Error(`container node '${this.name}' still runs ${timeoutMs} ms after ${signal}`);
      await sleep(50);
    }
    this.routing.restarted(this);
  }
}
