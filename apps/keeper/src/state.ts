import type { DownCause, NodeRole } from '@pgfleet/roles';
import type { Lsn } from '@pgfleet/wal';
import type { ClusterSnapshot } from './dcs/index.js';
import { INITIAL_STANDBY_WATCH, type StandbyWatch } from './primary-decision.js';
import { INITIAL_SERVER_WATCH, type ServerWatch } from './server-watch-decision.js';
import { INITIAL_WATCH, type PrimaryWatch, type SyncObservation } from './standby-decision.js';
import { NO_LEASE, type WriteLease } from './write-lease.js';

/** A decision as last taken, for logs and /status. */
export interface DecisionRecord {
  kind: string;
  reason: string;
  /** Stable identity for logging (the reason may carry a countdown). */
  key: string;
  at: number;
}

/** Everything a node keeper remembers between iterations. Mutated only by the loops. */
export interface KeeperState {
  startedAt: number;
  role: NodeRole | 'unknown';
  /** Why the local server counts as down (set with role 'down'). */
  downCause?: DownCause;
  /** The last role the server answered with (primary or standby), null before the first. */
  lastServingRole: 'primary' | 'standby' | null;
  roleSince: number;
  roleReason: string;
  timeline: number | null;
  lsn: Lsn | null;
  fenced: boolean;
  /** Why this keeper fenced its server (null when it did not, or after unfencing). */
  fenceReason: string | null;
  /**
   * Counts the fences and unfences this keeper carried out (see `noteFence`). A read of the
   * server begun before the count moved is stale about the fence: the loop does not copy it.
   */
  fenceEpoch: number;
  /** A fence is being carried out (the write lease is already revoked). */
  fencing: boolean;
  /** The write lease behind /primary (see write-lease.ts). */
  lease: WriteLease;
  /** The keeper's watch over its own postmaster (see server-watch-decision.ts). */
  serverWatch: ServerWatch;
  /** Last time the loop read an unfenced primary on the local server. */
  lastPrimaryAt: number | null;
  /** The keeper stopped its server hard at this time (null: it did not, or it serves again). */
  serverStoppedAt: number | null;
  paused: boolean;
  lastIterationAt: number | null;
  lastError: string | null;
  decision: DecisionRecord | null;

  // standby mode
  primaryWatch: PrimaryWatch;
  lastPrimaryLsn: bigint | null;
  sync: SyncObservation;
  peerReportedDownAt: number | null;
  /**
   * Set when the primary's keeper said it restored sync: until then (or until a probe sees
   * this standby synchronous) the loop re-probes quickly instead of once per interval, since
   * the walsender may report 'async' for a moment after the reload.
   */
  syncRecheckUntil: number | null;
  replicaStreaming: boolean;
  lagBytes: bigint | null;
  replayPaused: boolean;

  // primary mode
  standbyWatch: StandbyWatch;
  currentSyncNames: string | null;
  degraded: boolean;
  standbyLagBytes: bigint | null;
  peerRole: NodeRole | 'unknown';
  peerTimeline: number | null;
  lastStandbyContactAt: number | null;
  /** reply_time of the standby's walsender row at the previous iteration (ms). */
  lastStandbyReplyAt: number | null;
  lastWitnessContactAt: number | null;
  witnessGrantedToPeer: boolean;
  /** Primary mode: the witness answered this iteration's heartbeat. */
  witnessAnswered: boolean;
  /** Primary mode: the standby may be promoted without losing acknowledged commits. */
  standbyPromotable: boolean;
  holdFence: boolean;
  switchoverRunning: boolean;
  /** The fast-path notice has been sent for the current outage of the local server. */
  notifiedPeerDown: boolean;
  lastProbeLatencyMs: number | null;

  counters: { promotions: number; degrades: number; restores: number; fences: number; serverStops: number };

  /** Clusters on etcd only (see dcs-node.ts). */
  dcs: DcsMemory;
}

/** What a keeper on etcd remembers between iterations. */
export interface DcsMemory {
  /** The last cluster read (also served by /cluster), null before the first. */
  snapshot: ClusterSnapshot | null;
  /** When `snapshot` was read (clock ms). */
  readAt: number | null;
  /** Primary: the last confirmed end of the leader key's lease (null: not held). */
  heldUntil: number | null;
  /**
   * Primary: the fence must have started by then (heldUntil − fence budget); the guard's
   * timer fences at that moment even if the loop is stuck. Null: no deadline (not leading).
   */
  fenceBy: number | null;
  /** The leader as last seen, with its last published position and timeline. */
  leader: { name: string; walLsn: Lsn | null; timeline: number | null } | null;
  /** Members seen streaming while `leader` led (Patroni: "was a healthy replica"). */
  streamedUnderLeader: string[];
  /** The last etcd error, for the log (logged when it changes). */
  lastError: string | null;
  /** Primary: the member names its replication slots were last ensured for. */
  slotsFor: string;
  /**
   * Primary with quorum commit: WAL position noted right after synchronous_standby_names last
   * took effect (or at the first iteration as primary); see sync-decision.ts.
   */
  syncSince: Lsn | null;
  /** Primary: each standby's last reply_time seen, and when it last streamed and replied. */
  lastReplyAt: Record<string, number>;
  lastGoodAt: Record<string, number>;
  /** Standby: racing for the leader key or promoting after winning it (refuses failsafe requests). */
  claiming: boolean;
  /** Standby: the leader it last confirmed in failsafe mode, and until when it takes no key. */
  failsafePromise: { leader: string; until: number } | null;
  /** Standby: `leader@host:port` its primary_conninfo was last set to by this keeper, DETACHED_HOST once it stopped streaming (null: not known). */
  following: string | null;
}

export const INITIAL_DCS_MEMORY: DcsMemory = {
  snapshot: null,
  readAt: null,
  heldUntil: null,
  fenceBy: null,
  leader: null,
  streamedUnderLeader: [],
  lastError: null,
  slotsFor: '',
  syncSince: null,
  lastReplyAt: {},
  lastGoodAt: {},
  claiming: false,
  failsafePromise: null,
  following: null,
};

export function initialState(now: number): KeeperState {
  return {
    startedAt: now,
    role: 'unknown',
    lastServingRole: null,
    roleSince: now,
    roleReason: 'not checked yet',
    timeline: null,
    lsn: null,
    fenced: false,
    fenceReason: null,
    fenceEpoch: 0,
    fencing: false,
    lease: NO_LEASE,
    serverWatch: INITIAL_SERVER_WATCH,
    lastPrimaryAt: null,
    serverStoppedAt: null,
    paused: false,
    lastIterationAt: null,
    lastError: null,
    decision: null,
    primaryWatch: INITIAL_WATCH,
    lastPrimaryLsn: null,
    sync: 'unknown',
    peerReportedDownAt: null,
    syncRecheckUntil: null,
    replicaStreaming: false,
    lagBytes: null,
    replayPaused: false,
    standbyWatch: INITIAL_STANDBY_WATCH,
    currentSyncNames: null,
    degraded: false,
    standbyLagBytes: null,
    peerRole: 'unknown',
    peerTimeline: null,
    lastStandbyContactAt: null,
    lastStandbyReplyAt: null,
    lastWitnessContactAt: null,
    witnessGrantedToPeer: false,
    witnessAnswered: false,
    standbyPromotable: true,
    holdFence: false,
    switchoverRunning: false,
    notifiedPeerDown: false,
    lastProbeLatencyMs: null,
    counters: { promotions: 0, degrades: 0, restores: 0, fences: 0, serverStops: 0 },
    dcs: { ...INITIAL_DCS_MEMORY, streamedUnderLeader: [], lastReplyAt: {}, lastGoodAt: {} },
  };
}

/** The JSON served at /status and printed by `pgfleet-keeper status`. No secrets in it. */
export interface KeeperStatus {
  node: string;
  mode: 'node' | 'witness';
  role: NodeRole | 'unknown' | 'witness';
  roleSince: string;
  roleReason: string;
  timeline: number | null;
  lsn: string | null;
  fenced: boolean;
  fenceReason: string | null;
  /**
   * The write lease is held now: what /primary (and /, /master, /read-write, /leader)
   * answers 200 for. Only an unfenced primary with fresh evidence holds it.
   */
  writable: boolean;
  lease: string;
  paused: boolean;
  healthy: boolean;
  /** Standby: streaming from its primary. */
  streaming: boolean;
  /** Standby: WAL it would lack if promoted now. Primary: what its standby has not replayed. */
  lagBytes: number | null;
  replayPaused: boolean;
  peer: {
    name: string;
    role: NodeRole | 'unknown';
    timeline: number | null;
    consecutiveFailures: number;
    lastProbeLatencyMs: number | null;
  };
  sync: {
    configured: string;
    current: string | null;
    degraded: boolean;
    /** Standby: what the primary said about it at last contact. */
    observation: SyncObservation;
  };
  decision: { kind: string; reason: string; at: string } | null;
  lastIterationAt: string | null;
  lastError: string | null;
  counters: { promotions: number; degrades: number; restores: number; fences: number; serverStops: number };
  /** Clusters on etcd only: the leader and the members as last read from etcd. */
  cluster?: {
    leader: string | null;
    members: { name: string; role: string; state: string; timeline: number | null }[];
    /** The last etcd error while etcd does not answer; null when it does. */
    etcdError: string | null;
  };
  /** Witness mode only. */
  witness?: {
    grant: { to: string; primary: string; at: string } | null;
    heartbeats: Record<string, unknown>;
  };
}

/** This keeper fenced its server (`reason`) or lifted its fence (null). */
export function noteFence(s: KeeperState, reason: string | null): void {
  s.fenced = reason !== null;
  s.fenceReason = reason;
  s.fenceEpoch++;
}

/**
 * The fence state a read of the server shows, unless this keeper fenced or unfenced since the
 * read began (`readEpoch`): then the keeper's own record is the newer one.
 */
export function fenceAfterRead(
  s: Pick<KeeperState, 'fenced' | 'fenceEpoch'>,
  readEpoch: number,
  serverFenced: boolean,
): boolean {
  return readEpoch === s.fenceEpoch ? serverFenced : s.fenced;
}
