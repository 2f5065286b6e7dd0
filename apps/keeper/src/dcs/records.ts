import { withConninfo } from '@pgfleet/connection';
import { formatLsn, isValidLsn, type Lsn, parseLsn } from '@pgfleet/wal';
import { z } from 'zod';
import type { MemberTags, SyncRecord, TimelineSwitch } from '../cluster-types.js';

/**
 * The JSON values the keeper keeps in etcd, and their validation on the way back in. Another
 * keeper version, an operator with etcdctl or a bug may have written anything there: a value
 * that does not parse is reported and skipped, never trusted. LSNs are stored as PostgreSQL
 * writes them ('16/B374D848'), so that etcdctl output reads like the server's.
 */

export type MemberRole = 'primary' | 'standby' | 'down' | 'unknown';

/** What a keeper publishes about its node each loop (its member key). */
export interface MemberState {
  role: MemberRole;
  /** Detail for `list`/`status`: 'running', 'streaming', 'catching up', 'stopped', 'fenced'... */
  state: string;
  timeline: number | null;
  /** Primary: pg_current_wal_lsn(). */
  walLsn: Lsn | null;
  /** Standby: pg_last_wal_receive_lsn(). */
  receivedLsn: Lsn | null;
  /** Standby: pg_last_wal_replay_lsn(). */
  replayedLsn: Lsn | null;
  /** Standby: bytes behind its primary as last seen. */
  lagBytes: number | null;
  /** Standby: its walreceiver streams. */
  streaming: boolean;
  /** Standby: the member it streams from. */
  upstream: string | null;
  fenced: boolean;
  tags: MemberTags;
  /** Where other keepers reach this keeper's HTTP API (failsafe checks, fast-path notices). */
  keeperUrl: string | null;
  /** How to reach this node's server, without any password (stripped before it is stored). */
  conninfo: string | null;
}

/** A member key as read back: the state plus who and when. */
export interface MemberRecord extends MemberState {
  name: string;
  /** ISO time of the keeper's last write of this key. */
  updatedAt: string;
  /** The etcd lease the key lives under (the member's session); it vanishes when that lapses. */
  lease: string;
  modRevision: string;
}

/** Cluster-wide settings every keeper follows (the `config` key); unset fields defer to local config. */
export interface ClusterConfig {
  /** No automatic failover, no fencing on lease loss, while true (`pgfleet-keeper pause`). */
  paused: boolean;
  /** n of `ANY n (...)`; 0 runs the cluster asynchronously. */
  syncCount?: number;
  /** Patroni's failsafe mode: a primary that cannot reach etcd keeps running while every member says so. */
  failsafeMode?: boolean;
  /** Bytes a standby may lag and still be promoted automatically. */
  maxLagOnFailover?: number;
  /**
   * An operator's handover under way: when `from` no longer holds the leader key, only `to` may
   * take it (switchover, `failover --candidate`) until `until` (ISO time).
   */
  handover?: Handover;
}

export interface Handover {
  kind: 'switchover' | 'failover';
  from: string;
  to: string;
  /** failover --force: lag, streaming and quorum checks skipped for `to`. */
  force: boolean;
  until: string;
}

export const DEFAULT_CLUSTER_CONFIG: Readonly<ClusterConfig> = Object.freeze({ paused: false });

const lsnText = z.string().refine(isValidLsn, 'not an LSN');
const nullableLsn = lsnText.nullable().transform((v) => (v === null ? null : parseLsn(v)));
const name = z.string().regex(/^[A-Za-z0-9_.-]{1,63}$/);
const tags = z.object({
  noFailover: z.boolean(),
  failoverPriority: z.number().int().min(0),
});

const memberJson = z.object({
  role: z.enum(['primary', 'standby', 'down', 'unknown']),
  state: z.string(),
  timeline: z.number().int().positive().nullable(),
  walLsn: nullableLsn,
  receivedLsn: nullableLsn,
  replayedLsn: nullableLsn,
  lagBytes: z.number().nonnegative().nullable(),
  streaming: z.boolean(),
  upstream: name.nullable(),
  fenced: z.boolean(),
  tags,
  keeperUrl: z.string().nullable(),
  conninfo: z.string().nullable(),
  updatedAt: z.string(),
});

// Loose: a newer keeper may add settings; an older one rewriting the key must keep them.
const configJson = z.looseObject({
  paused: z.boolean().default(false),
  syncCount: z.number().int().min(0).optional(),
  failsafeMode: z.boolean().optional(),
  maxLagOnFailover: z.number().int().min(0).optional(),
  handover: z
    .object({
      kind: z.enum(['switchover', 'failover']),
      from: name,
      to: name,
      force: z.boolean(),
      until: z.string(),
    })
    .optional(),
});

const syncJson = z.object({
  leader: name,
  voters: z.array(name),
  minAcks: z.number().int().min(0),
});

const historyJson = z.array(
  z.object({
    timeline: z.number().int().positive(),
    switchLsn: nullableLsn,
    reason: z.string(),
    at: z.string(),
    leader: name,
    previousLeader: name.nullable(),
  }),
);

const failsafeJson = z.record(name, z.string());

export type Decoded<T> = { ok: true; value: T } | { ok: false; reason: string };

function decode<T>(schema: z.ZodType<T>, text: string): Decoded<T> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return { ok: false, reason: 'not JSON' };
  }
  const res = schema.safeParse(raw);
  if (res.success) return { ok: true, value: res.data };
  const issue = res.error.issues[0];
  return { ok: false, reason: `${issue?.path.join('.') || 'value'}: ${issue?.message ?? 'invalid'}` };
}

const lsnOut = (l: Lsn | null) => (l === null ? null : formatLsn(l));

/** The conninfo others may see: every password keyword removed (kept out of etcd entirely). */
export function publicConninfo(conninfo: string | null): string | null {
  if (conninfo === null) return null;
  try {
    return withConninfo(conninfo, { password: undefined, sslpassword: undefined });
  } catch {
    // Not parseable: publishing nothing beats publishing something that may hold a secret.
    return null;
  }
}

export function encodeMember(state: MemberState, updatedAt: string): string {
  return JSON.stringify({
    role: state.role,
    state: state.state,
    timeline: state.timeline,
    walLsn: lsnOut(state.walLsn),
    receivedLsn: lsnOut(state.receivedLsn),
    replayedLsn: lsnOut(state.replayedLsn),
    lagBytes: state.lagBytes,
    streaming: state.streaming,
    upstream: state.upstream,
    fenced: state.fenced,
    tags: { noFailover: state.tags.noFailover, failoverPriority: state.tags.failoverPriority },
    keeperUrl: state.keeperUrl,
    conninfo: publicConninfo(state.conninfo),
    updatedAt,
  });
}

export function decodeMember(text: string): Decoded<MemberState & { updatedAt: string }> {
  return decode(memberJson, text);
}

export function encodeConfig(config: ClusterConfig): string {
  return JSON.stringify(config);
}

export function decodeConfig(text: string): Decoded<ClusterConfig> {
  return decode(configJson, text) as Decoded<ClusterConfig>;
}

export function encodeSync(record: SyncRecord): string {
  return JSON.stringify({
    leader: record.leader,
    voters: [...record.voters].sort(),
    minAcks: record.minAcks,
  });
}

export function decodeSync(text: string): Decoded<SyncRecord> {
  return decode(syncJson, text);
}

export function encodeHistory(entries: readonly TimelineSwitch[]): string {
  return JSON.stringify(entries.map((e) => ({ ...e, switchLsn: lsnOut(e.switchLsn) })));
}

export function decodeHistory(text: string): Decoded<TimelineSwitch[]> {
  return decode(historyJson, text);
}

export function encodeFailsafe(members: Readonly<Record<string, string>>): string {
  return JSON.stringify(Object.fromEntries(Object.entries(members).sort(([a], [b]) => a.localeCompare(b))));
}

export function decodeFailsafe(text: string): Decoded<Record<string, string>> {
  return decode(failsafeJson, text);
}
