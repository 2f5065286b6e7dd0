import { formatLsn } from '@pgfleet/wal';
import type { KeeperConfig } from './config.js';
import type { KeeperState, KeeperStatus } from './state.js';
import { describeLease } from './write-lease.js';

/** The /status document (and `pgfleet-keeper status`) from the keeper's state. No secrets in it. */
const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export function buildStatus(
  c: KeeperConfig,
  s: KeeperState,
  now: number,
  alive: boolean,
  writable = false,
): KeeperStatus {
  const primary = s.role === 'primary';
  const lag = primary ? s.standbyLagBytes : s.lagBytes;
  return {
    node: c.node.name,
    mode: 'node',
    role: s.role,
    roleSince: iso(s.roleSince)!,
    roleReason: s.roleReason,
    timeline: s.timeline,
    lsn: s.lsn === null ? null : formatLsn(s.lsn),
    fenced: s.fenced,
    fenceReason: s.fenced ? (s.fenceReason ?? 'fenced before this keeper started') : null,
    writable,
    lease: describeLease(s.lease, now),
    paused: s.paused,
    healthy: alive && (s.role === 'primary' || s.role === 'standby'),
    streaming: s.role === 'standby' && s.replicaStreaming,
    lagBytes: lag === null ? null : Number(lag),
    replayPaused: s.role === 'standby' && s.replayPaused,
    peer: {
      name: c.peer.name,
      role: s.peerRole,
      timeline: s.peerTimeline,
      consecutiveFailures: primary ? s.standbyWatch.consecutiveFailures : s.primaryWatch.consecutiveFailures,
      lastProbeLatencyMs: s.lastProbeLatencyMs,
    },
    sync: {
      // On etcd: what the keeper aims at (ANY n over the healthy standbys).
      configured: c.dcs
        ? c.cluster.syncCount > 0
          ? `ANY ${c.cluster.syncCount} (healthy standbys)`
          : ''
        : c.syncStandbyNames,
      current: s.currentSyncNames,
      degraded: primary && s.degraded,
      observation: s.sync,
    },
    decision: s.decision
      ? { kind: s.decision.kind, reason: s.decision.reason, at: iso(s.decision.at)! }
      : null,
    lastIterationAt: iso(s.lastIterationAt),
    lastError: s.lastError,
    counters: { ...s.counters },
    ...(c.dcs
      ? {
          cluster: {
            leader: s.dcs.snapshot?.leader?.name ?? null,
            members: (s.dcs.snapshot?.members ?? []).map((m) => ({
              name: m.name,
              role: m.role,
              state: m.state,
              timeline: m.timeline,
            })),
            etcdError: s.dcs.lastError,
          },
        }
      : {}),
  };
}
