import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { type BoundPorts, GenericContainer, type WaitStrategy } from 'testcontainers';

/** The runtime's handle on one container (dockerode's, as testcontainers hands it out). */
export type RuntimeContainer = Parameters<WaitStrategy['waitUntilReady']>[0];

/** Connection facts for a server published on 127.0.0.1. */
export interface HostAddress {
  port: number;
  user: string;
  password: string;
  database: string;
}

/**
 * Waits until the server answers `SELECT 1` from this host through its published port. Not
 * `Wait.forHealthCheck()`: podman without systemd never runs healthchecks. Not a log line
 * either: a fresh data directory prints "ready to accept connections" twice (the init server,
 * then the real one), and a hot standby prints a different line. The init server listens on
 * the Unix socket only, so the first answer on TCP is the real server's.
 */
export async function waitForSql(
  addr: HostAddress,
  timeoutMs: number,
  isGone?: () => Promise<string | undefined>,
) {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer yet';
  for (let attempt = 0; ; attempt++) {
    const client = new pg.Client({ host: '127.0.0.1', ...addr, connectionTimeoutMillis: 2_000 });
    client.on('error', () => {});
    try {
      await client.connect();
      await client.query('SELECT 1');
      return;
    } catch (err) {
      last = (err as Error).message;
    } finally {
      await client.end().catch(() => {});
    }
    if (attempt % 10 === 9 && isGone) {
      const why = await isGone();
      if (why) throw new Error(`PostgreSQL on 127.0.0.1:${addr.port} will not come up: ${why}`);
    }
    if (Date.now() > deadline)
      throw new Error(`PostgreSQL on 127.0.0.1:${addr.port} not ready after ${timeoutMs} ms (${last})`);
    await sleep(100);
  }
}

/** Why a container will never become ready (it exited), or undefined while it runs. */
export async function exitedReason(container: RuntimeContainer): Promise<string | undefined> {
  const info = await container.inspect().catch(() => undefined);
  if (!info) return 'the container is gone';
  if (info.State.Running) return undefined;
  return `the container exited with code ${info.State.ExitCode}${info.State.Error ? ` (${info.State.Error})` : ''}`;
}

class SqlWaitStrategy implements WaitStrategy {
  private timeoutMs = 120_000;
  private timeoutSet = false;

  constructor(private readonly addr: HostAddress) {}

  async waitUntilReady(container: RuntimeContainer, _ports: BoundPorts): Promise<void> {
    await waitForSql(this.addr, this.timeoutMs, () => exitedReason(container));
  }

  withStartupTimeout(ms: number): this {
    this.timeoutMs = ms;
    this.timeoutSet = true;
    return this;
  }

  isStartupTimeoutSet(): boolean {
    return this.timeoutSet;
  }

  getStartupTimeout(): number {
    return this.timeoutMs;
  }
}

export interface PostgresContainerSpec {
  image: string;
  name: string;
  hostPort: number;
  /** Its own network, created first, with fixed addresses on it (restarts keep them). */
  network?: { name: string; ip: string; mac: string };
  addr: HostAddress;
  command: string[];
  /** Replaces the image's entrypoint (the standby clones its primary first). */
  entrypoint?: string[];
  /** Runs after the container is created, before it starts (join the other networks). */
  created?: (id: string) => Promise<void>;
}

/**
 * A PostgreSQL container as the official `postgres` image's contract describes it (env
 * POSTGRES_*, settings as `-c` arguments), published on 127.0.0.1 only at a port we chose:
 * testcontainers binds every interface and lets the runtime pick a port that changes on each
 * restart, while keeper configs hold the port.
 */
export class PostgresContainer extends GenericContainer {
  private readonly spec: PostgresContainerSpec;

  constructor(spec: PostgresContainerSpec) {
    super(spec.image);
    this.spec = spec;
    this.withName(spec.name)
      .withEnvironment({
        POSTGRES_USER: spec.addr.user,
        POSTGRES_PASSWORD: spec.addr.password,
        POSTGRES_DB: spec.addr.database,
      })
      .withCommand(spec.command)
      .withExposedPorts({ container: 5432, host: spec.hostPort })
      .withWaitStrategy(new SqlWaitStrategy(spec.addr))
      .withStartupTimeout(120_000);
    if (spec.entrypoint) this.withEntrypoint(spec.entrypoint);
    this.hostConfig.PortBindings = {
      '5432/tcp': [{ HostIp: '127.0.0.1', HostPort: String(spec.hostPort) }],
    };
    if (spec.network) {
      this.withNetworkMode(spec.network.name);
      this.createOpts.NetworkingConfig = {
        EndpointsConfig: {
          [spec.network.name]: { IPAMConfig: { IPv4Address: spec.network.ip }, MacAddress: spec.network.mac },
        },
      };
    }
  }

  protected override async containerCreated(containerId: string): Promise<void> {
    await this.spec.created?.(containerId);
  }
}
