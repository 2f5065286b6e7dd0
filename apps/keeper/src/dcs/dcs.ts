import type { SyncRecord, TimelineSwitch } from '../cluster-types.js';
import type { ClusterConfig, MemberRecord, MemberState } from './records.js';

/**
 * What the keeper loop asks of its distributed configuration store: Patroni's model on etcd.
 * One session lease per keeper carries its member key and, while it leads, the leader key;
 * renewing the lease each loop keeps both. Every call has a hard timeout and takes an
 * AbortSignal; "etcd unreachable" throws DcsError DCS_UNAVAILABLE, while losing a race is an
 * ordinary result (`won: false`, `held: false`), never an error.
 *
 * Times (`heldUntil`) are on the injected clock: the time the renewal was *sent* plus the
 * lease TTL, a lower bound of when etcd will drop the keys. A leader must stop taking writes
 * before `heldUntil`, since another node may win the leader key right after it.
 */
export interface Dcs {
  readonly memberName: string;

  /** One linearizable read of the whole cluster (leader, members, config, sync, history, failsafe). */
  readCluster(opts?: DcsCallOptions): Promise<ClusterSnapshot>;

  /** Renews (or re-creates) this keeper's session lease and publishes its member key under it. */
  touchMember(state: MemberState, opts?: DcsCallOptions): Promise<SessionLease>;

  /**
   * Races for the leader key in one etcd transaction that succeeds only while the key is absent
   * (and, with `expectSyncRevision`, while the `sync` key is still the one the decision read:
   * `null` = absent). Winning attaches the key to this keeper's session lease.
   */
  acquireLeader(opts?: DcsCallOptions & { expectSyncRevision?: string | null }): Promise<LeaderAttempt>;

  /**
   * Keeps the leader key: renews the lease, then checks the key still names us under that lease.
   * A key that names us under another live lease (this keeper's previous run) is taken over.
   */
  renewLeader(opts?: DcsCallOptions): Promise<LeaderRenewal>;

  /** Deletes the leader key if it names us (a graceful handover: no wait for the TTL). */
  releaseLeader(opts?: DcsCallOptions): Promise<boolean>;

  /** Writes the sync promise; only while the leader key names us under our lease. */
  writeSync(record: SyncRecord, opts?: DcsCallOptions): Promise<boolean>;

  /** Publishes the members a primary may ask directly when etcd is down; leader only. */
  writeFailsafe(members: Readonly<Record<string, string>>, opts?: DcsCallOptions): Promise<boolean>;

  /**
   * Appends a timeline switch (compare-and-swap; an entry for the same timeline is not added
   * twice); leader only. Returns the history as stored, or null when we do not lead.
   */
  appendHistory(entry: TimelineSwitch, opts?: DcsCallOptions): Promise<TimelineSwitch[] | null>;

  /**
   * Waits until the leader key changes after `afterRevision` (a snapshot's revision): 'changed',
   * or 'timeout' when nothing happened in `timeoutMs` (or etcd could not be reached: the next
   * readCluster says which). Lets a standby react to a released or expired leader key at once
   * instead of at its next tick.
   */
  waitForLeaderChange(opts: {
    afterRevision: string;
    timeoutMs: number;
    signal?: AbortSignal;
  }): Promise<'changed' | 'timeout'>;

  /** Changes the cluster-wide config with compare-and-swap (any keeper or the CLI may). */
  updateConfig(
    change: (current: ClusterConfig) => ClusterConfig,
    opts?: DcsCallOptions,
  ): Promise<ClusterConfig>;

  /**
   * Ends the session. With `revoke`, the lease is revoked so the member key (and the leader
   * key, if held) disappear now; only safe once this node no longer takes writes.
   */
  close(opts?: DcsCallOptions & { revoke?: boolean }): Promise<void>;
}

export interface DcsCallOptions {
  signal?: AbortSignal;
  /** Hard limit for the whole call, every round trip included (default: the DCS's requestTimeout). */
  timeoutMs?: number;
}

export interface SessionLease {
  lease: string;
  /** Clock time before which etcd cannot have dropped this session's keys. */
  heldUntil: number;
}

export type LeaderAttempt =
  | { won: true; heldUntil: number }
  /** `holder` is the member named in the leader key; `sync-changed`: the key was free but `sync` moved. */
  | { won: false; holder: string | null; reason: 'held' | 'sync-changed' };

export type LeaderRenewal =
  | { held: true; heldUntil: number }
  /** `lease-expired`: our session lapsed (the key went with it); `taken`: another member holds it; `absent`: nobody. */
  | { held: false; holder: string | null; reason: 'lease-expired' | 'taken' | 'absent' };

export interface LeaderKey {
  name: string;
  lease: string;
  modRevision: string;
}

export interface ClusterSnapshot {
  /** etcd's revision at the read. */
  revision: string;
  leader: LeaderKey | null;
  /** Members with a live session, sorted by name. */
  members: MemberRecord[];
  config: ClusterConfig;
  /** mod_revision of the config key, null when it was never written. */
  configRevision: string | null;
  sync: SyncRecord | null;
  /** mod_revision of the sync key, for `acquireLeader({ expectSyncRevision })`; null when absent. */
  syncRevision: string | null;
  history: TimelineSwitch[];
  /** Member name → keeper URL, as the leader last published it. */
  failsafe: Record<string, string> | null;
  /** Keys whose values could not be read (skipped), for the log. */
  invalid: { key: string; reason: string }[];
}
