import { PostgreSqlContainer, type StartedPostgreSqlContainer } from '@testcontainers/postgresql';
import pg from 'pg';
import {
  GenericContainer,
  getContainerRuntimeClient,
  Network,
  type StartedNetwork,
  type StartedTestContainer,
  Wait,
} from 'testcontainers';
import type { ClusterNode, ClusterProvider, LogicalOptions } from './types.js';

const PASSWORD = 'pgfleet-e2e';

export class ProviderCapabilityError extends Error {
  readonly code = 'PROVIDER_UNSUPPORTED';
}

function settingArgs(settings: Record<string, string | number | boolean>): string[] {
  return Object.entries(settings).flatMap(([k, v]) => [
    '-c',
    `${k}=${typeof v === 'boolean' ? (v ? 'on' : 'off') : v}`,
  ]);
}

const BASE = {
  wal_level: 'replica',
  max_wal_senders: 10,
  max_replication_slots: 10,
  hot_standby: true,
  wal_log_hints: true,
};
const LOGICAL = {
  wal_level: 'logical',
  track_commit_timestamp: true,
  max_replication_slots: 20,
  max_wal_senders: 20,
};

class ContainerNode implements ClusterNode {
  constructor(
    readonly name: string,
    readonly major: number,
    readonly container: StartedTestContainer,
  ) {}

  conninfo(opts: { from?: string } = {}): string {
    if (opts.from) {
      throw new ProviderCapabilityError(
        `containers provider: per-party addresses (from '${opts.from}') are not supported; ` +
          'partitions isolate whole containers from the network',
      );
    }
    return `host=${this.container.getHost()} port=${this.container.getMappedPort(5432)} user=postgres password=${PASSWORD} dbname=postgres`;
  }

  async query<R extends Record<string, unknown>>(sql: string, params: unknown[] = []): Promise<R[]> {
    const client = new pg.Client({
      host: this.container.getHost(),
      port: this.container.getMappedPort(5432),
      user: 'postgres',
      password: PASSWORD,
      database: 'postgres',
      connectionTimeoutMillis: 10_000,
    });
    client.on('error', () => {});
    await client.connect();
    try {
      return (await client.query(sql, params)).rows as R[];
    } finally {
      await client.end().catch(() => {});
    }
  }

  private async raw() {
    return (await getContainerRuntimeClient()).container.getById(this.container.getId());
  }

  async kill(): Promise<void> {
    // The postmaster is PID 1's child only through the entrypoint's exec: it *is* PID 1.
    await this.container.exec(['bash', '-c', 'kill -9 $(head -1 /var/lib/postgresql/data/postmaster.pid)']);
  }

  async stop(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    await this.container.exec([
      'gosu',
      'postgres',
      'pg_ctl',
      'stop',
      '-m',
      mode,
      '-D',
      '/var/lib/postgresql/data',
    ]);
  }

  async start(): Promise<void> {
    await this.container.restart();
  }

  async pause(): Promise<void> {
    await (await this.raw()).pause();
  }

  async resume(): Promise<void> {
    await (await this.raw()).unpause();
  }
}

/** PostgreSQL in containers through testcontainers (needs a Docker-compatible runtime). */
export class ContainersProvider implements ClusterProvider {
  readonly kind = 'containers' as const;
  private readonly nodes = new Map<string, ContainerNode>();

  private constructor(
    readonly major: number,
    readonly image: string,
    private readonly network: StartedNetwork,
  ) {}

  static async create(opts: { major?: number; image?: string } = {}): Promise<ContainersProvider> {
    const major = opts.major ?? 17;
    const network = await new Network().start();
    return new ContainersProvider(major, opts.image ?? `postgres:${major}`, network);
  }

  async startPrimary(name: string, opts: LogicalOptions & { logical?: boolean } = {}): Promise<ClusterNode> {
    const settings = { ...BASE, ...(opts.logical ? LOGICAL : {}), ...(opts.settings ?? {}) };
    const started: StartedPostgreSqlContainer = await new PostgreSqlContainer(this.image)
      .withUsername('postgres')
      .withPassword(PASSWORD)
      .withDatabase('postgres')
      .withNetwork(this.network)
      .withNetworkAliases(name)
      .withCommand(['postgres', ...settingArgs(settings)])
      .start();
    await started.exec([
      'bash',
      '-c',
      `echo "host replication all all scram-sha-256" >> /var/lib/postgresql/data/pg_hba.conf`,
    ]);
    await started.exec(['gosu', 'postgres', 'pg_ctl', 'reload', '-D', '/var/lib/postgresql/data']);
    const node = new ContainerNode(name, this.major, started);
    this.nodes.set(name, node);
    return node;
  }

  async startStandby(name: string, primary: ClusterNode): Promise<ClusterNode> {
    const script = [
      'set -e',
      `export PGPASSWORD=${PASSWORD}`,
      'rm -rf /var/lib/postgresql/data/*',
      `until pg_basebackup -h ${primary.name} -U postgres -D /var/lib/postgresql/data -X stream -R -c fast -C -S ${name}; do sleep 1; done`,
      'chown -R postgres:postgres /var/lib/postgresql/data && chmod 700 /var/lib/postgresql/data',
      `exec gosu postgres postgres -D /var/lib/postgresql/data ${settingArgs(BASE).join(' ')}`,
    ].join('\n');
    const started = await new GenericContainer(this.image)
      .withNetwork(this.network)
      .withNetworkAliases(name)
      .withExposedPorts(5432)
      .withEntrypoint(['bash', '-c', script])
      .withWaitStrategy(Wait.forLogMessage(/database system is ready to accept read-only connections/))
      .start();
    const node = new ContainerNode(name, this.major, started);
    this.nodes.set(name, node);
    return node;
  }

  async startLogicalNodes(names: string[], opts: LogicalOptions = {}): Promise<ClusterNode[]> {
    const out: ClusterNode[] = [];
    for (const name of names) out.push(await this.startPrimary(name, { ...opts, logical: true }));
    return out;
  }

  /** Disconnects `b` from the shared network: containers can only be isolated as a whole. */
  async partition(_a: string, b: string): Promise<void> {
    const node = this.require(b);
    const client = await getContainerRuntimeClient();
    await client.network.getById(this.network.getId()).disconnect({ Container: node.container.getId() });
  }

  async heal(_a: string, b: string): Promise<void> {
    const node = this.require(b);
    const client = await getContainerRuntimeClient();
    await client.network
      .getById(this.network.getId())
      .connect({ Container: node.container.getId(), EndpointConfig: { Aliases: [b] } });
  }

  async destroy(): Promise<void> {
    for (const node of this.nodes.values()) await node.container.stop().catch(() => {});
    await this.network.stop().catch(() => {});
  }

  private require(name: string): ContainerNode {
    const node = this.nodes.get(name);
    if (!node) throw new ProviderCapabilityError(`containers provider: no node named '${name}'`);
    return node;
  }
}

/** Resolves to undefined when a container runtime answers, else to the reason it does not. */
export async function containerRuntimeUnavailable(timeoutMs = 5_000): Promise<string | undefined> {
  const probe = getContainerRuntimeClient().then(
    () => undefined,
    (err: Error) => err.message.split('\n')[0] ?? 'no container runtime',
  );
  const timeout = new Promise<string>((resolve) =>
    setTimeout(() => resolve(`no container runtime answered within ${timeoutMs} ms`), timeoutMs).unref(),
  );
  return Promise.race([probe, timeout]);
}
