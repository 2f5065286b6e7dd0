import { randomBytes } from 'node:crypto';
import { freePort, freePortSync, PartyProxy } from '@pgfleet/sandbox';
import { type ContainerRuntimeClient, getContainerRuntimeClient } from 'testcontainers';
import { ContainerNode, type ContainerRouting } from './container-node.js';
import { type HostAddress, PostgresContainer } from './postgres-container.js';
import type { ClusterNode, ClusterProvider, LogicalOptions } from './types.js';

export class ProviderCapabilityError extends Error {
  readonly code = 'PROVIDER_UNSUPPORTED';
}

export class ProviderConfigError extends Error {
  readonly code = 'PROVIDER_CONFIG';
}

type RuntimeNetwork = ReturnType<ContainerRuntimeClient['network']['getById']>;

function settingArgs(settings: Record<string, string | number | boolean>): string[] {
  return Object.entries(settings).flatMap(([k, v]) => [
    '-c',
    `${k}=${typeof v === 'boolean' ? (v ? 'on' : 'off') : v}`,
  ]);
}

/** The sandbox's node settings (packages/sandbox), less what only a shared host needs. */
const BASE = {
  max_connections: 60,
  shared_buffers: '32MB',
  // As in the sandbox: fsync only matters for an OS crash; a killed container's writes are in
  // the host's page cache.
  fsync: false,
  wal_level: 'replica',
  max_wal_senders: 10,
  max_replication_slots: 10,
  wal_keep_size: '256MB',
  hot_standby: true,
  hot_standby_feedback: true,
  wal_log_hints: true,
  wal_receiver_status_interval: '1s',
  wal_retrieve_retry_interval: '500ms',
  datestyle: 'iso, mdy',
  timezone: 'UTC',
};
const LOGICAL = {
  wal_level: 'logical',
  track_commit_timestamp: true,
  max_replication_slots: 20,
  max_wal_senders: 20,
  max_worker_processes: 16,
  max_logical_replication_workers: 8,
};

/**
 * pg_hba.conf of the official image admits `host all all all` only; standbys in other
 * containers need a replication line too. An init script is part of the image contract
 * (/docker-entrypoint-initdb.d), so this works on ours and on `postgres:N` alike.
 */
const REPLICATION_HBA = `#!/bin/sh
printf 'host replication all all %s\\n' "\${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}" >> "$PGDATA/pg_hba.conf"
`;

/** A node's own network: the node is on it at a fixed address, and so is every peer that may reach it. */
interface HomeNetwork {
  network: RuntimeNetwork;
  name: string;
  /** First three octets of its /24, e.g. "10.89.3". */
  prefix: string;
}

const cutKey = (a: string, b: string) => [a, b].sort().join('\u0000');

/**
 * PostgreSQL in containers through testcontainers, on any Docker-API runtime (Docker, or
 * podman serving the Docker API as scripts/containers.mjs starts it).
 *
 * Addresses. Processes on this host reach a node through its port published on 127.0.0.1.
 * Containers reach each other through the runtime's networks: every node has a network of
 * its own, and every other node joins it, each at a fixed address (node i is .(10+i) on every
 * network), so restarts keep addresses and a standby's primary_conninfo stays valid.
 *
 * Partitions. Between two nodes: each leaves the other's network (disconnect), and joins it
 * again at the same address on heal. Between a node and a party on this host (a keeper, a
 * replicator): that party reaches the node through a loopback proxy of its own, which
 * black-holes the traffic while cut, as in the sandbox.
 */
export class ContainersProvider implements ClusterProvider {
  readonly kind = 'containers' as const;
  private readonly runId = randomBytes(3).toString('hex');
  private readonly password = randomBytes(12).toString('hex');
  private readonly nodes = new Map<string, ContainerNode>();
  private readonly homes = new Map<string, HomeNetwork>();
  private readonly index = new Map<string, number>();
  private readonly proxies = new Map<string, PartyProxy>();
  private readonly cuts = new Set<string>();
  private readonly routing: ContainerRouting = {
    address: (node, from) => this.address(node, from),
    restarted: (node) => {
      for (const p of this.proxies.values()) if (p.to === node.name) p.resetConnections();
    },
  };
  private majorChecked = false;

  private constructor(
    readonly major: number,
    readonly image: string,
    private readonly client: ContainerRuntimeClient,
  ) {}

  static async create(opts: { major?: number; image?: string } = {}): Promise<ContainersProvider> {
    const major = opts.major ?? 17;
    const client = await getContainerRuntimeClient();
    return new ContainersProvider(major, opts.image ?? `postgres:${major}`, client);
  }

  async startPrimary(name: string, opts: LogicalOptions & { logical?: boolean } = {}): Promise<ClusterNode> {
    const settings = { ...BASE, ...(opts.logical ? LOGICAL : {}), ...(opts.settings ?? {}) };
    return this.startNode(name, { command: ['postgres', ...settingArgs(settings)] });
  }

  /**
   * A pg_basebackup clone of `primary` that streams from it over the primary's network, with
   * a physical slot named after it. The clone runs before the image's own entrypoint, which
   * then finds a populated data directory and only starts the server.
   */
  async startStandby(name: string, primary: ClusterNode): Promise<ClusterNode> {
    const source = this.require(primary.name);
    const slot = name.replace(/[^a-z0-9_]/gi, '_').toLowerCase();
    const clone = [
      'set -e',
      'if [ ! -s "$PGDATA/PG_VERSION" ]; then',
      `  PGPASSWORD='${this.password}' pg_basebackup -h ${source.ip} -p 5432 -U ${source.addr.user} \\`,
      `    -d 'application_name=${name}' -D "$PGDATA" -X stream -R -c fast -C -S ${slot}`,
      '  chown -R postgres:postgres "$PGDATA"',
      '  chmod 700 "$PGDATA"',
      'fi',
      'exec docker-entrypoint.sh "$@"',
    ].join('\n');
    return this.startNode(name, {
      command: ['postgres', ...settingArgs(BASE)],
      entrypoint: ['bash', '-c', clone, 'standby-entrypoint'],
    });
  }

  async startLogicalNodes(names: string[], opts: LogicalOptions = {}): Promise<ClusterNode[]> {
    const out: ClusterNode[] = [];
    for (const name of names) out.push(await this.startPrimary(name, { ...opts, logical: true }));
    return out;
  }

  async partition(a: string, b: string): Promise<void> {
    this.cuts.add(cutKey(a, b));
    await this.applyCut(a, b, true);
  }

  async heal(a: string, b: string): Promise<void> {
    this.cuts.delete(cutKey(a, b));
    await this.applyCut(a, b, false);
  }

  async destroy(): Promise<void> {
    await Promise.all([...this.proxies.values()].map((p) => p.close()));
    this.proxies.clear();
    await Promise.all(
      [...this.nodes.values()].map((n) => n.container.remove({ force: true, v: true }).catch(() => {})),
    );
    this.nodes.clear();
    await Promise.all([...this.homes.values()].map((h) => h.network.remove().catch(() => {})));
    this.homes.clear();
  }

  private async startNode(
    name: string,
    spec: { command: string[]; entrypoint?: string[] },
  ): Promise<ContainerNode> {
    if (this.nodes.has(name) || this.index.has(name))
      throw new ProviderConfigError(`containers provider: a node named '${name}' exists already`);
    const i = this.index.size;
    this.index.set(name, i);
    const home = await this.createHome(name);
    const addr: HostAddress = {
      port: await freePort(),
      user: 'postgres',
      password: this.password,
      database: 'postgres',
    };
    const ip = this.ipOn(home, name);
    const mac = this.macOn(name, name);
    const peers = [...this.nodes.values()];
    const started = await new PostgresContainer({
      image: this.image,
      name: `pgfleet-${this.runId}-${name}`,
      hostPort: addr.port,
      network: { name: home.name, ip, mac },
      addr,
      command: spec.command,
      entrypoint: spec.entrypoint,
      // Before the server starts: it joins every peer's network, every peer joins its own.
      created: async (id) => {
        await Promise.all(
          peers.flatMap((p) => {
            if (this.cuts.has(cutKey(p.name, name))) return [];
            return [this.join(id, name, p.name), this.join(p.container.id, p.name, name)];
          }),
        );
      },
    })
      .withCopyContentToContainer([
        {
          content: REPLICATION_HBA,
          target: '/docker-entrypoint-initdb.d/pgfleet-replication.sh',
          mode: 0o755,
        },
      ])
      .start();
    const node = new ContainerNode(
      name,
      this.major,
      this.client.container.getById(started.getId()),
      addr,
      ip,
      this.routing,
    );
    this.nodes.set(name, node);
    await this.checkMajor(node);
    return node;
  }

  /** The image must run the major the suite is for (PGFLEET_PG_VERSION), or results mislead. */
  private async checkMajor(node: ContainerNode): Promise<void> {
    if (this.majorChecked) return;
    const [row] = await node.query<{ v: string }>(`SELECT current_setting('server_version_num') AS v`);
    const actual = Math.floor(Number(row?.v) / 10_000);
    if (actual !== this.major) {
      throw new ProviderConfigError(
        `containers provider: image '${this.image}' runs PostgreSQL ${actual}, but the suite is for ` +
          `PostgreSQL ${this.major} (PGFLEET_PG_VERSION); set E2E_IMAGE to an image of that major`,
      );
    }
    this.majorChecked = true;
  }

  private async createHome(name: string): Promise<HomeNetwork> {
    const netName = `pgfleet-${this.runId}-${name}`;
    const network = await this.client.network.create({
      Name: netName,
      Driver: 'bridge',
      CheckDuplicate: true,
      Labels: { 'org.pgfleet.e2e.run': this.runId },
    });
    const info = await network.inspect();
    const subnet: string | undefined = info.IPAM?.Config?.[0]?.Subnet;
    const m = subnet ? /^(\d+\.\d+\.\d+)\.0\/24$/.exec(subnet) : null;
    if (!m?.[1]) {
      await network.remove().catch(() => {});
      throw new ProviderCapabilityError(
        `containers provider: network ${netName} got subnet '${subnet}'; a /24 is needed for fixed addresses`,
      );
    }
    const home = { network, name: netName, prefix: m[1] };
    this.homes.set(name, home);
    return home;
  }

  private ipOn(home: HomeNetwork, member: string): string {
    return `${home.prefix}.${10 + (this.index.get(member) ?? 0)}`;
  }

  /**
   * A fixed MAC address as well: a restarted container gets a new interface, and with a new
   * MAC its peers' ARP caches would keep sending to the old one until the entry goes stale
   * (tens of seconds: a standby's reconnect to its restarted primary hangs that long).
   * Locally administered (02:…), unique per network: owner and member indexes.
   */
  private macOn(owner: string, member: string): string {
    const hex = (n: number) => n.toString(16).padStart(2, '0');
    return `02:70:67:00:${hex(this.index.get(owner) ?? 0)}:${hex(this.index.get(member) ?? 0)}`;
  }

  /** Connects container `containerId` (node `member`) to the network of node `owner`. */
  private async join(containerId: string, member: string, owner: string): Promise<void> {
    const home = this.homes.get(owner);
    if (!home) return;
    await home.network.connect({
      Container: containerId,
      EndpointConfig: {
        IPAMConfig: { IPv4Address: this.ipOn(home, member) },
        MacAddress: this.macOn(owner, member),
      },
    });
  }

  private async leave(containerId: string, owner: string): Promise<void> {
    const home = this.homes.get(owner);
    if (!home) return;
    await home.network.disconnect({ Container: containerId, Force: true });
  }

  private async applyCut(a: string, b: string, cut: boolean): Promise<void> {
    const [na, nb] = [this.nodes.get(a), this.nodes.get(b)];
    if (na && nb) {
      if (cut) await Promise.all([this.leave(na.container.id, b), this.leave(nb.container.id, a)]);
      else await Promise.all([this.join(na.container.id, a, b), this.join(nb.container.id, b, a)]);
      return;
    }
    for (const p of this.proxies.values()) {
      if (cutKey(p.from, p.to) !== cutKey(a, b)) continue;
      if (cut) p.block();
      else p.unblock();
    }
  }

  private address(node: ContainerNode, from: string | undefined): { host: string; port: number } {
    if (from === undefined || from === node.name) return { host: '127.0.0.1', port: node.addr.port };
    if (this.nodes.has(from) || this.index.has(from)) return { host: node.ip, port: 5432 };
    const key = `${from}->${node.name}`;
    let proxy = this.proxies.get(key);
    if (!proxy) {
      proxy = new PartyProxy(from, node.name, () => node.addr.port);
      proxy.listen(freePortSync());
      this.proxies.set(key, proxy);
      if (this.cuts.has(cutKey(from, node.name))) proxy.block();
    }
    return { host: '127.0.0.1', port: proxy.listenPort };
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
