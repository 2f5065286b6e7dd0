import { randomBytes } from 'node:crypto';
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { trackForCleanup, untrackForCleanup } from './cleanup.js';
import { SandboxError } from './errors.js';
import { type EtcdBinary, findEtcd } from './etcd-binary.js';
import { EtcdMember } from './etcd-member.js';
import { type EtcdTlsClient, type EtcdTlsFiles, makeEtcdTls, tlsClient } from './etcd-tls.js';
import { freePort, freePortSync } from './ports.js';
import { ProcessRegistry } from './process-registry.js';
import { PartyProxy } from './proxy.js';

export interface EtcdClusterOptions {
  /** Number of members (default 3). */
  members?: number;
  /** Prefix of the temp root directory. */
  name?: string;
  /**
   * Parent of the temp root. Default: /dev/shm when writable, else the OS temp dir. etcd fsyncs
   * every raft entry; on a shared, loaded disk one slow fdatasync stalls commits for seconds and
   * lapses leases, which would make timing tests fail for reasons outside the code under test.
   */
  baseDir?: string;
  /** Path of the etcd binary (default: PATH, then /usr/bin/etcd). */
  binary?: string;
  /** etcd's --heartbeat-interval in ms (etcd's default 100). */
  heartbeatMs?: number;
  /** etcd's --election-timeout in ms (etcd's default 1000). */
  electionTimeoutMs?: number;
  /** Wait until every member is healthy (default true). */
  waitHealthy?: boolean;
  /**
   * Serve clients over TLS only (https://, certificates from a throw-away CA made with openssl)
   * and require a client certificate signed by it (etcd's --client-cert-auth).
   */
  tls?: boolean;
  /** etcd's --auth-token-ttl in seconds (its default 300): how long an unused auth token lives. */
  authTokenTtlSeconds?: number;
}

/**
 * A real etcd cluster on 127.0.0.1 (Debian's etcd-server), for tests, the demo and benchmarks.
 * Members `etcd1..etcdN` have their own client and peer ports and data directories under one
 * temp root, removed on exit, on Ctrl-C, or by the watchdog if this process dies.
 *
 * Each client party (a keeper, a test) reaches each member through its own loopback proxy
 * (`endpoints({ from })`), so `partition(client)` cuts one party off etcd while every other
 * party still reaches it. Faults: kill (SIGKILL), stop, pause/resume (SIGSTOP/SIGCONT), restart.
 */
export class EtcdCluster {
  readonly root: string;
  readonly binary: EtcdBinary;
  private readonly registry: ProcessRegistry;
  private readonly byName = new Map<string, EtcdMember>();
  private readonly proxies = new Map<string, PartyProxy>();
  private readonly cuts = new Set<string>();
  private destroyed = false;
  /** The PEM files when the cluster serves TLS (`tls: true`), else null. */
  tlsFiles: EtcdTlsFiles | null = null;
  /** What a client presents to it (CA, client certificate and key as PEM text), else null. */
  tlsClient: EtcdTlsClient | null = null;

  private constructor(root: string, binary: EtcdBinary) {
    this.root = root;
    this.binary = binary;
    this.registry = new ProcessRegistry(root);
  }

  static async start(opts: EtcdClusterOptions = {}): Promise<EtcdCluster> {
    const count = opts.members ?? 3;
    if (!Number.isInteger(count) || count < 1 || count > 9) {
      throw new SandboxError('SANDBOX_ETCD_SIZE', `an etcd cluster has 1 to 9 members, not ${count}`, {
        count,
      });
    }
    const binary = findEtcd(opts.binary ? { binary: opts.binary } : {});
    const base = opts.baseDir ?? defaultBaseDir();
    mkdirSync(base, { recursive: true });
    const root = mkdtempSync(join(base, `pgfleet-${opts.name ?? 'etcd'}-`));
    const cluster = new EtcdCluster(root, binary);
    trackForCleanup(cluster);
    cluster.registry.startWatchdog();

    const ports: { name: string; client: number; peer: number }[] = [];
    for (let i = 1; i <= count; i++)
      ports.push({ name: `etcd${i}`, client: await freePort(), peer: await freePort() });
    const initialCluster = ports.map((p) => `${p.name}=http://127.0.0.1:${p.peer}`).join(',');
    if (opts.tls) {
      cluster.tlsFiles = makeEtcdTls(join(root, 'tls'));
      cluster.tlsClient = tlsClient(cluster.tlsFiles);
    }
    const tls = cluster.tlsFiles;
    const scheme = tls ? 'https' : 'http';
    const token = `pgfleet-${randomBytes(6).toString('hex')}`;
    for (const p of ports) {
      const dataDir = join(root, p.name);
      const member: EtcdMember = new EtcdMember({
        name: p.name,
        binary: binary.path,
        dataDir,
        logFile: join(root, `${p.name}.log`),
        clientPort: p.client,
        peerPort: p.peer,
        registry: cluster.registry,
        onStart: () => cluster.resetProxiesTo(p.name),
        ...(cluster.tlsClient ? { tls: cluster.tlsClient } : {}),
        args: [
          `--name=${p.name}`,
          `--data-dir=${dataDir}`,
          `--listen-client-urls=${scheme}://127.0.0.1:${p.client}`,
          `--advertise-client-urls=${scheme}://127.0.0.1:${p.client}`,
          ...(tls
            ? [
                `--cert-file=${tls.serverCert}`,
                `--key-file=${tls.serverKey}`,
                `--trusted-ca-file=${tls.ca}`,
                '--client-cert-auth',
              ]
            : []),
          `--listen-peer-urls=http://127.0.0.1:${p.peer}`,
          `--initial-advertise-peer-urls=http://127.0.0.1:${p.peer}`,
          `--initial-cluster=${initialCluster}`,
          '--initial-cluster-state=new',
          `--initial-cluster-token=${token}`,
          `--heartbeat-interval=${opts.heartbeatMs ?? 100}`,
          `--election-timeout=${opts.electionTimeoutMs ?? 1000}`,
          ...(opts.authTokenTtlSeconds ? [`--auth-token-ttl=${opts.authTokenTtlSeconds}`] : []),
          '--logger=zap',
          '--log-outputs=stderr',
        ],
      });
      cluster.byName.set(p.name, member);
    }
    try {
      // Members of a new cluster wait for each other: start them all, then wait.
      for (const m of cluster.byName.values()) m.spawn();
      if (opts.waitHealthy !== false) await cluster.waitHealthy();
    } catch (err) {
      await cluster.destroy();
      throw err;
    }
    return cluster;
  }

  get members(): EtcdMember[] {
    return [...this.byName.values()];
  }

  member(name: string): EtcdMember {
    const m = this.byName.get(name);
    if (!m) {
      throw new SandboxError('SANDBOX_UNKNOWN_ETCD_MEMBER', `no etcd member named '${name}'`, {
        name,
        members: [...this.byName.keys()],
      });
    }
    return m;
  }

  /**
   * Client URLs of every member. With `from`, each goes through the proxy dedicated to that
   * party (created on first use), which `partition(from)` cuts; without, the members' own ports.
   */
  endpoints(opts: { from?: string } = {}): string[] {
    return this.members.map((m) =>
      opts.from === undefined
        ? m.clientUrl
        : `${this.tlsFiles ? 'https' : 'http'}://127.0.0.1:${this.route(opts.from, m)}`,
    );
  }

  /** Waits until every running member reports healthy (a leader, no alarm). */
  async waitHealthy(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (const m of this.members) {
      if (m.isRunning) await m.waitHealthy(Math.max(1, deadline - Date.now()));
    }
  }

  /**
   * Turns on etcd's authentication with one user, `root` (role root), whose password is given:
   * from then on every client needs a token from /v3/auth/authenticate (or, with TLS, a client
   * certificate whose CN names a user).
   */
  async enableAuth(rootPassword: string): Promise<void> {
    const m = this.members.find((x) => x.isRunning);
    if (!m) throw new SandboxError('SANDBOX_ETCD', 'no running etcd member to enable auth on');
    const post = (path: string, body: unknown) => gatewayPost(m.clientUrl, path, body, this.tlsClient);
    await post('/v3/auth/user/add', { name: 'root', password: rootPassword });
    await post('/v3/auth/role/add', { name: 'root' });
    await post('/v3/auth/user/grant', { user: 'root', role: 'root' });
    await post('/v3/auth/enable', {});
  }

  /** SIGKILL of one member. */
  async kill(name: string): Promise<void> {
    await this.member(name).kill();
  }

  /** SIGKILL of every member at once: etcd is gone entirely. */
  async killAll(): Promise<void> {
    await Promise.all(this.members.map((m) => m.kill()));
  }

  /** Graceful stop (SIGTERM) of one member. */
  async stop(name: string): Promise<void> {
    await this.member(name).stop();
  }

  pause(name: string): void {
    this.member(name).pause();
  }

  resume(name: string): void {
    this.member(name).resume();
  }

  /**
   * Starts a stopped or killed member again on its data directory (it rejoins with its old
   * identity). Waits for it to be healthy unless `waitHealthy: false` (a lone member of a
   * cluster without quorum never is).
   */
  async restart(name: string, opts: { waitHealthy?: boolean; timeoutMs?: number } = {}): Promise<void> {
    const m = this.member(name);
    if (m.isRunning) await m.stop();
    m.spawn();
    if (opts.waitHealthy !== false) await m.waitHealthy(opts.timeoutMs ?? 30_000);
  }

  /** Starts every member that is not running (after killAll); waits until all are healthy. */
  async restartAll(opts: { timeoutMs?: number } = {}): Promise<void> {
    for (const m of this.members) if (!m.isRunning) m.spawn();
    await this.waitHealthy(opts.timeoutMs ?? 30_000);
  }

  /**
   * Cuts party `client` off from `members` (default: all): its connections through its
   * proxies stall like a black-holed network, and new ones are accepted but never answered.
   */
  partition(client: string, members?: string[]): void {
    for (const m of members ?? [...this.byName.keys()]) {
      this.member(m);
      this.cuts.add(cutKey(client, m));
    }
    this.applyCuts();
  }

  heal(client: string, members?: string[]): void {
    for (const m of members ?? [...this.byName.keys()]) this.cuts.delete(cutKey(client, m));
    this.applyCuts();
  }

  healAll(): void {
    this.cuts.clear();
    this.applyCuts();
  }

  async destroy(): Promise<void> {
    if (this.destroyed) return;
    for (const p of this.proxies.values()) await p.close();
    await Promise.all(this.members.map((m) => m.kill().catch(() => {})));
    this.destroySync();
  }

  /** Kills every member and removes the temp root; safe to call twice. */
  destroySync(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    untrackForCleanup(this);
    for (const p of this.proxies.values()) p.resetConnections();
    this.registry.killAllSync();
    this.registry.removeRootSync();
  }

  private route(from: string, m: EtcdMember): number {
    if (!/^[A-Za-z0-9_.-]+$/.test(from)) {
      throw new SandboxError('SANDBOX_BAD_NAME', `party name '${from}' must be letters, digits, _ . -`, {
        from,
      });
    }
    const key = cutKey(from, m.name);
    let proxy = this.proxies.get(key);
    if (!proxy) {
      proxy = new PartyProxy(from, m.name, () => m.clientPort);
      proxy.listen(freePortSync());
      this.proxies.set(key, proxy);
      this.applyCuts();
    }
    return proxy.listenPort;
  }

  /** A member that (re)starts has no old sessions: drop the proxied ones, like a real RST. */
  private resetProxiesTo(name: string): void {
    for (const p of this.proxies.values()) if (p.to === name) p.resetConnections();
  }

  private applyCuts(): void {
    for (const [key, p] of this.proxies) {
      if (this.cuts.has(key)) p.block();
      else p.unblock();
    }
  }
}

function cutKey(client: string, member: string): string {
  return `${client}->${member}`;
}

function defaultBaseDir(): string {
  const shm = '/dev/shm';
  try {
    if (existsSync(shm)) {
      accessSync(shm, constants.W_OK);
      return shm;
    }
  } catch {
    // not writable: fall back to the temp dir
  }
  return tmpdir();
}

/** One JSON request to etcd's v3 gateway; throws with etcd's message unless it answers 200. */
function gatewayPost(base: string, path: string, body: unknown, tls: EtcdTlsClient | null): Promise<unknown> {
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = (tls ? httpsRequest : httpRequest)(
      `${base}${path}`,
      {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
        timeout: 10_000,
        ...(tls ?? {}),
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          text += c;
        });
        res.on('end', () =>
          res.statusCode === 200
            ? resolve(JSON.parse(text || '{}'))
            : reject(
                new SandboxError(
                  'SANDBOX_ETCD',
                  `etcd ${path}: HTTP ${res.statusCode} ${text.slice(0, 200)}`,
                ),
              ),
        );
      },
    );
    req.on('timeout', () => req.destroy(new Error('no answer in 10 s')));
    req.on('error', (err) => reject(new SandboxError('SANDBOX_ETCD', `etcd ${path}: ${err.message}`)));
    req.end(payload);
  });
}
