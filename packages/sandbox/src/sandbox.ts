import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type FindPostgresOptions, findPostgres } from './binaries.js';
import { trackForCleanup, untrackForCleanup } from './cleanup.js';
import { SandboxError, SandboxNodeError } from './errors.js';
import { type NodeRouting, SandboxNode } from './node.js';
import { freePort, freePortSync } from './ports.js';
import { ProcessRegistry } from './process-registry.js';
import { PartyProxy } from './proxy.js';
import { chownTree, type RunAs, resolveRunAs } from './run-as.js';
import { ensureRunnable } from './runnable.js';
import { cloneStandby } from './standby.js';
import type { NodeOptions, PgInstallation, ServerSettings, StandbyOptions } from './types.js';

const execFileAsync = promisify(execFile);

export interface SandboxOptions extends FindPostgresOptions {
  /** Prefix of the temp root directory. */
  name?: string;
  /** Parent of the temp root; defaults to the OS temp dir. */
  baseDir?: string;
  /** OS user servers run as when we are root (default 'postgres'). */
  runAsUser?: string;
}

/** Settings every sandbox node gets: loopback only, small, quick to fail over. */
const BASE_SETTINGS: ServerSettings = {
  listen_addresses: '127.0.0.1',
  unix_socket_directories: '',
  max_connections: 60,
  shared_buffers: '32MB',
  // fsync only matters for an OS crash; a SIGKILLed server keeps its page cache.
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
  logging_collector: false,
  log_line_prefix: '%m [%p] %q%a ',
  log_min_messages: 'warning',
  datestyle: 'iso, mdy',
  timezone: 'UTC',
};

const LOGICAL_SETTINGS: ServerSettings = {
  wal_level: 'logical',
  track_commit_timestamp: true,
  max_replication_slots: 20,
  max_wal_senders: 20,
  max_worker_processes: 16,
  max_logical_replication_workers: 8,
};

/**
 * A set of real PostgreSQL servers under one temp root, on 127.0.0.1 with OS-picked
 * ports. Parties (standbys, keepers, replicators) can reach a node through a dedicated
 * loopback proxy, which is what `partition()` cuts.
 */
export class Sandbox implements NodeRouting {
  readonly root: string;
  readonly installation: PgInstallation;
  private readonly runAs: RunAs | undefined;
  private readonly registry: ProcessRegistry;
  private readonly nodes = new Map<string, SandboxNode>();
  private readonly proxies = new Map<string, PartyProxy>();
  private readonly cuts = new Set<string>();
  private destroyed = false;

  private constructor(root: string, installation: PgInstallation, runAs: RunAs | undefined) {
    this.root = root;
    this.installation = installation;
    this.runAs = runAs;
    this.registry = new ProcessRegistry(root);
  }

  /**
   * Starts an empty sandbox. Without `major`/`binDir`, PGFLEET_PG_VERSION and PG_BIN choose the
   * server (the test suites run once per major that way); else the newest one found.
   */
  static async create(opts: SandboxOptions = {}): Promise<Sandbox> {
    const runAs = resolveRunAs(opts.runAsUser);
    const installation = ensureRunnable(
      findPostgres({ ...sandboxDefaultsFromEnv(), ...stripUndefined(opts) }),
      runAs,
    );
    const base = opts.baseDir ?? tmpdir();
    mkdirSync(base, { recursive: true });
    const root = mkdtempSync(join(base, `pgfleet-${opts.name ?? 'sandbox'}-`));
    chmodSync(root, 0o755);
    chownTree(root, runAs);
    const sb = new Sandbox(root, installation, runAs);
    trackForCleanup(sb);
    sb.registry.startWatchdog();
    return sb;
  }

  get major(): number {
    return this.installation.major;
  }

  node(name: string): SandboxNode {
    const n = this.nodes.get(name);
    if (!n) throw new SandboxError('SANDBOX_UNKNOWN_NODE', `no sandbox node named '${name}'`, { name });
    return n;
  }

  get nodeList(): SandboxNode[] {
    return [...this.nodes.values()];
  }

  /** initdb + start a new primary (or standalone) node. */
  async startNode(name: string, opts: NodeOptions = {}): Promise<SandboxNode> {
    const node = await this.initNode(name, opts);
    await node.start();
    return node;
  }

  /** Several logical-ready nodes (wal_level=logical, track_commit_timestamp=on), started in order. */
  async startLogicalNodes(names: string[], settings: ServerSettings = {}): Promise<SandboxNode[]> {
    const out: SandboxNode[] = [];
    for (const name of names) out.push(await this.startNode(name, { logical: true, settings }));
    return out;
  }

  /**
   * A streaming standby of `primary`, cloned with pg_basebackup when the installation has it,
   * else with an online low-level backup copy. It connects to the primary through the
   * proxy of party `<name>`, so `partition(primary.name, name)` cuts replication.
   */
  async createStandby(name: string, primary: SandboxNode, opts: StandbyOptions = {}): Promise<SandboxNode> {
    this.assertNewName(name);
    const dataDir = join(this.root, name);
    const port = await freePort();
    const password = primary.facts().password;
    const node = this.makeNode(name, dataDir, port, password);
    const slot =
      opts.slot === false ? undefined : (opts.slot ?? name.replace(/[^a-z0-9_]/gi, '_').toLowerCase());
    await cloneStandby({
      primary,
      dataDir,
      installation: this.installation,
      runAs: this.runAs,
      slot,
      method: opts.method ?? (this.installation.hasBasebackup ? 'basebackup' : 'copy'),
      primaryConninfo: primary.conninfo({ from: name, extra: { application_name: name } }),
    });
    node.writeSettings({ port, ...(opts.settings ?? {}) });
    chownTree(dataDir, this.runAs);
    this.nodes.set(name, node);
    await node.start();
    return node;
  }

  /** Blocks all traffic between two parties (node names or any party name), both ways. */
  partition(a: string, b: string): void {
    this.cuts.add(cutKey(a, b));
    this.applyCuts();
  }

  heal(a: string, b: string): void {
    this.cuts.delete(cutKey(a, b));
    this.applyCuts();
  }

  healAll(): void {
    this.cuts.clear();
    this.applyCuts();
  }

  /** Cuts `name` off from every other party that reaches it (or that it reaches) through a proxy. */
  isolate(name: string): void {
    const parties = new Set<string>();
    for (const p of this.proxies.values()) parties.add(p.from).add(p.to);
    for (const other of parties) if (other !== name) this.cuts.add(cutKey(name, other));
    this.applyCuts();
  }

  /** NodeRouting: port of the proxy for (from → node), created on first use. */
  portFor(node: SandboxNode, from: string | undefined): number {
    if (from === undefined) return node.port;
    return this.route(from, node.name, node.port);
  }

  /**
   * Address of a proxy for party `from` → target `to`, created on first use. `to` is a node
   * name, or any other endpoint (a keeper's HTTP port) when `targetPort` is given.
   */
  route(from: string, to: string, targetPort?: number): number {
    const key = `${from}->${to}`;
    let proxy = this.proxies.get(key);
    if (!proxy) {
      const port = targetPort ?? this.node(to).port;
      proxy = new PartyProxy(from, to, () => port);
      proxy.listen(freePortSync());
      this.proxies.set(key, proxy);
      this.applyCuts();
    }
    return proxy.listenPort;
  }

  onRestart(node: SandboxNode): void {
    for (const p of this.proxies.values()) if (p.to === node.name) p.resetConnections();
  }

  async destroy(): Promise<void> {
    if (this.destroyed) return;
    for (const p of this.proxies.values()) await p.close();
    for (const node of this.nodes.values()) {
      try {
        if (node.isRunning) await node.stop('immediate', 10_000);
      } catch {
        // killAllSync below takes care of it
      }
    }
    this.destroySync();
  }

  /** Kills every server process group and removes the temp root; safe to call twice. */
  destroySync(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    untrackForCleanup(this);
    for (const p of this.proxies.values()) p.resetConnections();
    this.registry.killAllSync();
    this.registry.removeRootSync();
  }

  private applyCuts(): void {
    for (const p of this.proxies.values()) {
      if (this.cuts.has(cutKey(p.from, p.to))) p.block();
      else p.unblock();
    }
  }

  private assertNewName(name: string): void {
    if (!/^[a-z][a-z0-9_-]*$/i.test(name)) {
      throw new SandboxError('SANDBOX_BAD_NAME', `node name '${name}' must be letters, digits, _ or -`, {
        name,
      });
    }
    if (this.nodes.has(name))
      throw new SandboxError('SANDBOX_DUPLICATE_NODE', `node '${name}' exists already`);
  }

  private makeNode(name: string, dataDir: string, port: number, password: string): SandboxNode {
    return new SandboxNode({
      name,
      dataDir,
      port,
      password,
      installation: this.installation,
      runAs: this.runAs,
      routing: this,
      registry: this.registry,
    });
  }

  private async initNode(name: string, opts: NodeOptions): Promise<SandboxNode> {
    this.assertNewName(name);
    const dataDir = join(this.root, name);
    const password = randomBytes(12).toString('hex');
    const pwfile = join(this.root, `${name}.pw`);
    writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
    chownTree(pwfile, this.runAs);
    try {
      await execFileAsync(
        join(this.installation.binDir, 'initdb'),
        [
          '-D',
          dataDir,
          '-U',
          'postgres',
          `--pwfile=${pwfile}`,
          '--auth=scram-sha-256',
          '-E',
          'UTF8',
          '--locale=C',
          '--no-sync',
        ],
        {
          ...(this.runAs ? { uid: this.runAs.uid, gid: this.runAs.gid } : {}),
          env: { ...process.env, LC_ALL: 'C' },
        },
      );
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new SandboxNodeError(`node ${name}: initdb failed: ${e.stderr?.trim() || e.message}`, {
        node: name,
        dataDir,
      });
    }
    const port = await freePort();
    const node = this.makeNode(name, dataDir, port, password);
    node.writeSettings({
      ...BASE_SETTINGS,
      ...(opts.logical ? LOGICAL_SETTINGS : {}),
      port,
      ...(opts.settings ?? {}),
    });
    writeFileSync(
      join(dataDir, 'pg_hba.conf'),
      [
        '# pgfleet sandbox: loopback TCP only, password auth',
        'host all all 127.0.0.1/32 scram-sha-256',
        'host replication all 127.0.0.1/32 scram-sha-256',
        '',
      ].join('\n'),
    );
    chownTree(dataDir, this.runAs);
    this.nodes.set(name, node);
    return node;
  }
}

/** The sandbox's only environment knobs: which server binaries to use. */
export function sandboxDefaultsFromEnv(env: NodeJS.ProcessEnv = process.env): FindPostgresOptions {
  const out: FindPostgresOptions = {};
  if (env.PGFLEET_PG_VERSION) out.major = Number(env.PGFLEET_PG_VERSION);
  if (env.PG_BIN) out.binDir = env.PG_BIN;
  return out;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function cutKey(a: string, b: string): string {
  return a < b ? `${a}|${b}` : `${b}|${a}`;
}
