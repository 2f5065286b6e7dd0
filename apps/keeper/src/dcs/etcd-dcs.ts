import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import type { SyncRecord, TimelineSwitch } from '../cluster-types.js';
import type {
  ClusterSnapshot,
  Dcs,
  DcsCallOptions,
  LeaderAttempt,
  LeaderRenewal,
  SessionLease,
} from './dcs.js';
import { DcsError, DcsErrorCode } from './errors.js';
import { EtcdGateway, type GatewaySecurity, GRPC_NOT_FOUND } from './etcd-gateway.js';
import {
  type ClusterConfig,
  DEFAULT_CLUSTER_CONFIG,
  decodeConfig,
  decodeFailsafe,
  decodeHistory,
  decodeMember,
  decodeSync,
  encodeConfig,
  encodeFailsafe,
  encodeHistory,
  encodeMember,
  encodeSync,
  type MemberState,
} from './records.js';

export interface EtcdDcsOptions {
  /** Client URLs of the etcd members (http:// or https://). */
  endpoints: readonly string[];
  /** Keys live under `<prefix>/<cluster>/` (Patroni's namespace + scope). */
  prefix: string;
  cluster: string;
  /** This keeper's member name (its node's name). */
  memberName: string;
  /** Session lease TTL in seconds; etcd may grant more (its floor is 1.5 × election timeout). */
  ttlSeconds: number;
  /** Default hard limit of one call, all round trips included. */
  requestTimeoutMs: number;
  /** TLS material and etcd user (see GatewaySecurity); none: plain http, auth off. */
  security?: GatewaySecurity;
  /** Bound by the caller with `component: 'dcs'`. */
  logger: Logger;
  clock: Clock;
}

/** How many compare-and-swap rounds a read-modify-write tries before it reports contention. */
const CAS_ATTEMPTS = 5;

/** etcd's key-value as the JSON gateway renders it: zero fields are left out. */
interface Kv {
  key: string;
  value?: string;
  create_revision?: string;
  mod_revision?: string;
  lease?: string;
}

interface RangeResponse {
  header?: { revision?: string };
  kvs?: Kv[];
}

interface TxnResponse {
  header?: { revision?: string };
  succeeded?: boolean;
  responses?: { response_range?: RangeResponse }[];
}

type Compare =
  | { key: string; target: 'CREATE'; create_revision: string }
  | { key: string; target: 'MOD'; mod_revision: string }
  | { key: string; target: 'VALUE'; value: string }
  | { key: string; target: 'LEASE'; lease: string };

type RequestOp =
  | { request_put: { key: string; value: string; lease?: string } }
  | { request_range: { key: string } }
  | { request_delete_range: { key: string } };

interface Lease {
  id: string;
  ttlSeconds: number;
}

interface Renewed {
  id: string;
  heldUntil: number;
  /** A new lease replaced one that had expired: every key of the old session is gone. */
  replacedExpired: boolean;
}

/** The DCS on etcd's v3 JSON gateway (see etcd-gateway.ts for why not grpc). */
export class EtcdDcs implements Dcs {
  readonly memberName: string;
  private readonly gw: EtcdGateway;
  private readonly opts: EtcdDcsOptions;
  private readonly base: string;
  private lease: Lease | null = null;
  private lastRenewal: { sentAt: number; heldUntil: number; id: string } | null = null;
  private lastMember: { lease: string; value: string; at: number } | null = null;

  constructor(opts: EtcdDcsOptions) {
    this.opts = opts;
    this.memberName = opts.memberName;
    this.gw = new EtcdGateway(opts.endpoints, opts.security);
    const prefix = `/${opts.prefix.replace(/^\/+|\/+$/g, '')}`.replace(/^\/$/, '');
    this.base = `${prefix}/${opts.cluster}/`;
  }

  /** The key prefix of this cluster, e.g. `/pgfleet/main/`. */
  get keyPrefix(): string {
    return this.base;
  }

  async readCluster(opts: DcsCallOptions = {}): Promise<ClusterSnapshot> {
    const res = await this.call<RangeResponse>(
      '/kv/range',
      { key: b64(this.base), range_end: b64(prefixEnd(this.base)) },
      this.deadline(opts),
      opts,
    );
    const snap: ClusterSnapshot = {
      revision: res.header?.revision ?? '0',
      leader: null,
      members: [],
      config: { ...DEFAULT_CLUSTER_CONFIG },
      configRevision: null,
      sync: null,
      syncRevision: null,
      history: [],
      failsafe: null,
      invalid: [],
    };
    for (const kv of res.kvs ?? []) {
      const key = unb64(kv.key);
      const suffix = key.slice(this.base.length);
      const text = kv.value === undefined ? '' : unb64(kv.value);
      const bad = (reason: string) => snap.invalid.push({ key, reason });
      if (suffix === 'leader') {
        snap.leader = { name: text, lease: kv.lease ?? '0', modRevision: kv.mod_revision ?? '0' };
      } else if (suffix.startsWith('members/')) {
        const d = decodeMember(text);
        if (!d.ok) bad(d.reason);
        else
          snap.members.push({
            ...d.value,
            name: suffix.slice('members/'.length),
            lease: kv.lease ?? '0',
            modRevision: kv.mod_revision ?? '0',
          });
      } else if (suffix === 'config') {
        const d = decodeConfig(text);
        if (!d.ok) bad(d.reason);
        else snap.config = d.value;
        snap.configRevision = kv.mod_revision ?? null;
      } else if (suffix === 'sync') {
        const d = decodeSync(text);
        if (!d.ok) bad(d.reason);
        else snap.sync = d.value;
        snap.syncRevision = kv.mod_revision ?? null;
      } else if (suffix === 'history') {
        const d = decodeHistory(text);
        if (!d.ok) bad(d.reason);
        else snap.history = d.value;
      } else if (suffix === 'failsafe') {
        const d = decodeFailsafe(text);
        if (!d.ok) bad(d.reason);
        else snap.failsafe = d.value;
      }
    }
    snap.members.sort((a, b) => a.name.localeCompare(b.name));
    return snap;
  }

  async touchMember(state: MemberState, opts: DcsCallOptions = {}): Promise<SessionLease> {
    const deadline = this.deadline(opts);
    let lease = await this.renewSession(deadline, opts);
    const value = encodeMember(state, new Date().toISOString());
    // Skip a write that would only move updatedAt: the lease keeps the key alive, and every
    // raft entry costs an fsync on each etcd member. Rewrite at least once per TTL anyway.
    const same =
      this.lastMember && this.lastMember.lease === lease.id && sameExceptTime(this.lastMember.value, value);
    const fresh = this.lastMember && this.opts.clock.now() - this.lastMember.at < this.opts.ttlSeconds * 1000;
    if (same && fresh) return { lease: lease.id, heldUntil: lease.heldUntil };
    const put = (id: string) =>
      this.call('/kv/put', { key: b64(this.memberKey()), value: b64(value), lease: id }, deadline, opts);
    try {
      await put(lease.id);
    } catch (err) {
      if (!isLeaseNotFound(err)) throw err;
      this.dropLease();
      lease = await this.renewSession(deadline, opts);
      await put(lease.id);
    }
    this.lastMember = { lease: lease.id, value, at: this.opts.clock.now() };
    return { lease: lease.id, heldUntil: lease.heldUntil };
  }

  async acquireLeader(
    opts: DcsCallOptions & { expectSyncRevision?: string | null } = {},
  ): Promise<LeaderAttempt> {
    const deadline = this.deadline(opts);
    const attempt = async (): Promise<LeaderAttempt> => {
      const lease = await this.renewSession(deadline, opts);
      const compare: Compare[] = [{ key: b64(this.leaderKey()), target: 'CREATE', create_revision: '0' }];
      if (opts.expectSyncRevision !== undefined) {
        compare.push({
          key: b64(this.key('sync')),
          target: 'MOD',
          mod_revision: opts.expectSyncRevision ?? '0',
        });
      }
      const res = await this.txn(
        compare,
        [{ request_put: { key: b64(this.leaderKey()), value: b64(this.memberName), lease: lease.id } }],
        [{ request_range: { key: b64(this.leaderKey()) } }],
        deadline,
        opts,
      );
      if (res.succeeded) return { won: true, heldUntil: lease.heldUntil };
      const kv = firstKv(res, 0);
      // An earlier attempt whose answer was lost may have landed: the key is ours already.
      if (kv && unb64(kv.value ?? '') === this.memberName && kv.lease === lease.id)
        return { won: true, heldUntil: lease.heldUntil };
      if (kv) return { won: false, holder: unb64(kv.value ?? ''), reason: 'held' };
      return { won: false, holder: null, reason: 'sync-changed' };
    };
    try {
      return await attempt();
    } catch (err) {
      if (!isLeaseNotFound(err)) throw err;
      this.dropLease();
      return attempt();
    }
  }

  async renewLeader(opts: DcsCallOptions = {}): Promise<LeaderRenewal> {
    const deadline = this.deadline(opts);
    const lease = await this.renewSession(deadline, opts);
    const res = await this.txn(
      this.leaderGuard(lease.id),
      [],
      [{ request_range: { key: b64(this.leaderKey()) } }],
      deadline,
      opts,
    );
    if (res.succeeded) return { held: true, heldUntil: lease.heldUntil };
    const kv = firstKv(res, 0);
    const holder = kv ? unb64(kv.value ?? '') : null;
    if (lease.replacedExpired) return { held: false, holder, reason: 'lease-expired' };
    if (kv && holder === this.memberName && kv.lease !== lease.id) {
      // The key names us under a lease that is still alive but not this session's: a previous
      // run of this keeper (restarted while its server kept running as primary). Take it over
      // (Patroni's _update_leader does the same) rather than let it lapse, which would fence a
      // healthy primary for a whole TTL at every keeper restart. The compare on mod_revision
      // makes sure it is still that very key.
      const adopt = await this.txn(
        [
          { key: b64(this.leaderKey()), target: 'VALUE', value: b64(this.memberName) },
          { key: b64(this.leaderKey()), target: 'MOD', mod_revision: kv.mod_revision ?? '0' },
        ],
        [{ request_put: { key: b64(this.leaderKey()), value: b64(this.memberName), lease: lease.id } }],
        [],
        deadline,
        opts,
      );
      if (adopt.succeeded) {
        this.opts.logger.info(
          { previousLease: kv.lease, lease: lease.id },
          'took over our leader key from a previous session',
        );
        return { held: true, heldUntil: lease.heldUntil };
      }
    }
    return { held: false, holder, reason: holder === null ? 'absent' : 'taken' };
  }

  async releaseLeader(opts: DcsCallOptions = {}): Promise<boolean> {
    const res = await this.txn(
      [{ key: b64(this.leaderKey()), target: 'VALUE', value: b64(this.memberName) }],
      [{ request_delete_range: { key: b64(this.leaderKey()) } }],
      [],
      this.deadline(opts),
      opts,
    );
    return res.succeeded === true;
  }

  async writeSync(record: SyncRecord, opts: DcsCallOptions = {}): Promise<boolean> {
    return this.putAsLeader(this.key('sync'), encodeSync(record), opts);
  }

  async writeFailsafe(
    members: Readonly<Record<string, string>>,
    opts: DcsCallOptions = {},
  ): Promise<boolean> {
    return this.putAsLeader(this.key('failsafe'), encodeFailsafe(members), opts);
  }

  async appendHistory(entry: TimelineSwitch, opts: DcsCallOptions = {}): Promise<TimelineSwitch[] | null> {
    const deadline = this.deadline(opts);
    const lease = this.lease;
    if (!lease) return null;
    const key = this.key('history');
    for (let i = 0; i < CAS_ATTEMPTS; i++) {
      const cur = await this.readKey(key, deadline, opts);
      let list: TimelineSwitch[] = [];
      if (cur) {
        const d = decodeHistory(unb64(cur.value ?? ''));
        if (!d.ok) throw badValue(key, d.reason);
        list = d.value;
      }
      if (list.some((e) => e.timeline === entry.timeline)) return list;
      const next = [...list, entry].sort((a, b) => a.timeline - b.timeline);
      const res = await this.txn(
        [
          ...this.leaderGuard(lease.id),
          { key: b64(key), target: 'MOD', mod_revision: cur?.mod_revision ?? '0' },
        ],
        [{ request_put: { key: b64(key), value: b64(encodeHistory(next)) } }],
        [{ request_range: { key: b64(this.leaderKey()) } }],
        deadline,
        opts,
      );
      if (res.succeeded) return next;
      if (!this.namesUs(firstKv(res, 0), lease.id)) return null;
    }
    throw contention(key);
  }

  async waitForLeaderChange(opts: {
    afterRevision: string;
    timeoutMs: number;
    signal?: AbortSignal;
  }): Promise<'changed' | 'timeout'> {
    const deadline = performance.now() + opts.timeoutMs;
    while (performance.now() < deadline && !opts.signal?.aborted) {
      const how = await this.gw.stream(
        '/watch',
        {
          create_request: {
            key: b64(this.leaderKey()),
            start_revision: String(BigInt(opts.afterRevision) + 1n),
          },
        },
        {
          deadline,
          ...(opts.signal ? { signal: opts.signal } : {}),
          // The first message confirms the watch; events (or a compaction past our revision,
          // which means we missed some) are a change.
          onMessage: (m) =>
            Array.isArray(m.events) || m.compact_revision !== undefined || m.canceled === true,
        },
      );
      if (how === 'matched') return 'changed';
      if (how === 'timeout') return 'timeout';
      // The stream broke (member restarting): pause briefly, then watch again until the deadline.
      await new Promise((r) => setTimeout(r, Math.min(100, Math.max(0, deadline - performance.now()))));
    }
    return 'timeout';
  }

  async updateConfig(
    change: (current: ClusterConfig) => ClusterConfig,
    opts: DcsCallOptions = {},
  ): Promise<ClusterConfig> {
    const deadline = this.deadline(opts);
    const key = this.key('config');
    for (let i = 0; i < CAS_ATTEMPTS; i++) {
      const cur = await this.readKey(key, deadline, opts);
      let current: ClusterConfig = { ...DEFAULT_CLUSTER_CONFIG };
      if (cur) {
        const d = decodeConfig(unb64(cur.value ?? ''));
        // Never overwrite an operator's unreadable value with defaults: say which key to fix.
        if (!d.ok) throw badValue(key, d.reason);
        current = d.value;
      }
      const next = change(current);
      const res = await this.txn(
        [{ key: b64(key), target: 'MOD', mod_revision: cur?.mod_revision ?? '0' }],
        [{ request_put: { key: b64(key), value: b64(encodeConfig(next)) } }],
        [],
        deadline,
        opts,
      );
      if (res.succeeded) return next;
    }
    throw contention(key);
  }

  async close(opts: DcsCallOptions & { revoke?: boolean } = {}): Promise<void> {
    try {
      if (opts.revoke && this.lease) {
        await this.call('/lease/revoke', { ID: this.lease.id }, this.deadline(opts), opts);
        this.dropLease();
      }
    } finally {
      this.gw.close();
    }
  }

  private async putAsLeader(key: string, value: string, opts: DcsCallOptions): Promise<boolean> {
    const lease = this.lease;
    if (!lease) return false;
    const res = await this.txn(
      this.leaderGuard(lease.id),
      [{ request_put: { key: b64(key), value: b64(value) } }],
      [],
      this.deadline(opts),
      opts,
    );
    return res.succeeded === true;
  }

  /**
   * Keeps the session lease alive, or grants a new one when there is none or it expired. A
   * renewal sent within the last tenth of the TTL is reused: one keepalive per loop iteration
   * even when the loop both renews the leader key and touches its member key. (Reusing for
   * longer would let the lease run out between iterations.)
   */
  private async renewSession(deadline: number, opts: DcsCallOptions): Promise<Renewed> {
    const clock = this.opts.clock;
    const last = this.lastRenewal;
    const reuseMs = Math.min(this.opts.requestTimeoutMs, (this.opts.ttlSeconds * 1000) / 10);
    if (this.lease && last && last.id === this.lease.id && clock.now() - last.sentAt < reuseMs) {
      return { id: last.id, heldUntil: last.heldUntil, replacedExpired: false };
    }
    let replacedExpired = false;
    if (this.lease) {
      const sentAt = clock.now();
      const res = await this.call<{ TTL?: string }>(
        '/lease/keepalive',
        { ID: this.lease.id },
        deadline,
        opts,
      );
      const ttl = Number(res.TTL ?? 0);
      if (ttl > 0) return this.renewed(this.lease.id, sentAt, ttl, false);
      this.opts.logger.warn({ lease: this.lease.id }, 'session lease expired in etcd; its keys are gone');
      this.dropLease();
      replacedExpired = true;
    }
    const sentAt = clock.now();
    const res = await this.call<{ ID?: string; TTL?: string }>(
      '/lease/grant',
      { TTL: this.opts.ttlSeconds },
      deadline,
      opts,
    );
    if (!res.ID || !(Number(res.TTL) > 0)) {
      throw new DcsError(
        DcsErrorCode.DCS_BAD_RESPONSE,
        'etcd granted no lease (no ID or TTL in its answer)',
        {
          answer: res,
        },
      );
    }
    this.lease = { id: res.ID, ttlSeconds: Number(res.TTL) };
    this.opts.logger.debug({ lease: res.ID, ttl: Number(res.TTL) }, 'new session lease');
    return this.renewed(res.ID, sentAt, Number(res.TTL), replacedExpired);
  }

  private renewed(id: string, sentAt: number, ttlSeconds: number, replacedExpired: boolean): Renewed {
    const heldUntil = sentAt + ttlSeconds * 1000;
    this.lastRenewal = { sentAt, heldUntil, id };
    return { id, heldUntil, replacedExpired };
  }

  private dropLease(): void {
    this.lease = null;
    this.lastRenewal = null;
    this.lastMember = null;
  }

  /** The leader key names us and lives under our session lease. */
  private leaderGuard(leaseId: string): Compare[] {
    const key = b64(this.leaderKey());
    return [
      { key, target: 'VALUE', value: b64(this.memberName) },
      { key, target: 'LEASE', lease: leaseId },
    ];
  }

  private namesUs(kv: Kv | undefined, leaseId: string): boolean {
    return kv !== undefined && unb64(kv.value ?? '') === this.memberName && kv.lease === leaseId;
  }

  private async readKey(key: string, deadline: number, opts: DcsCallOptions): Promise<Kv | undefined> {
    const res = await this.call<RangeResponse>('/kv/range', { key: b64(key) }, deadline, opts);
    return res.kvs?.[0];
  }

  private txn(
    compare: Compare[],
    success: RequestOp[],
    failure: RequestOp[],
    deadline: number,
    opts: DcsCallOptions,
  ): Promise<TxnResponse> {
    return this.call<TxnResponse>('/kv/txn', { compare, success, failure }, deadline, opts);
  }

  private call<T>(path: string, body: unknown, deadline: number, opts: DcsCallOptions): Promise<T> {
    return this.gw.call<T>(path, body, { deadline, ...(opts.signal ? { signal: opts.signal } : {}) });
  }

  private deadline(opts: DcsCallOptions): number {
    return performance.now() + (opts.timeoutMs ?? this.opts.requestTimeoutMs);
  }

  private key(name: string): string {
    return `${this.base}${name}`;
  }

  private leaderKey(): string {
    return this.key('leader');
  }

  private memberKey(): string {
    return this.key(`members/${this.memberName}`);
  }
}

export function createEtcdDcs(opts: EtcdDcsOptions): EtcdDcs {
  return new EtcdDcs(opts);
}

function b64(s: string | Buffer): string {
  return (typeof s === 'string' ? Buffer.from(s, 'utf8') : s).toString('base64');
}

function unb64(s: string): string {
  return Buffer.from(s, 'base64').toString('utf8');
}

/** The end of etcd's range for every key starting with `prefix` (clientv3.GetPrefixRangeEnd). */
function prefixEnd(prefix: string): Buffer {
  const bytes = Buffer.from(prefix, 'utf8');
  for (let i = bytes.length - 1; i >= 0; i--) {
    if (bytes[i]! < 0xff) {
      bytes[i]! += 1;
      return bytes.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

function firstKv(res: TxnResponse, i: number): Kv | undefined {
  return res.responses?.[i]?.response_range?.kvs?.[0];
}

function isLeaseNotFound(err: unknown): boolean {
  return (
    err instanceof DcsError &&
    err.code === DcsErrorCode.DCS_REJECTED &&
    err.details.grpcCode === GRPC_NOT_FOUND &&
    /lease not found/i.test(String(err.details.etcdMessage))
  );
}

function sameExceptTime(a: string, b: string): boolean {
  const strip = (s: string) => s.replace(/"updatedAt":"[^"]*"/, '');
  return strip(a) === strip(b);
}

function badValue(key: string, reason: string): DcsError {
  return new DcsError(
    DcsErrorCode.DCS_BAD_RESPONSE,
    `etcd key ${key} holds a value the keeper cannot read (${reason}); fix or delete it`,
    { key, reason },
  );
}

function contention(key: string): DcsError {
  return new DcsError(
    DcsErrorCode.DCS_UNAVAILABLE,
    `etcd key ${key} changed under every one of ${CAS_ATTEMPTS} compare-and-swap attempts; try again`,
    { key },
  );
}
