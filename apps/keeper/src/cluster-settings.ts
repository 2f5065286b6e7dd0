import type { ConfigKey } from '@pgfleet/cli';
import { ConfigError } from '@pgfleet/connection';
import { z } from 'zod';
import { DEFAULT_TAGS, type MemberTags } from './cluster-types.js';
import { conninfo, duration } from './config-fields.js';

/**
 * The keeper configuration for clusters of any size on etcd: the `dcs`, `tags` and `cluster`
 * sections, part of config.ts's schema (`clusterSettingsShape` in its strictObject,
 * `checkClusterSettings` in its superRefine, `resolveClusterSettings` in its resolve step,
 * CLUSTER_SETTINGS_KEYS among its env/flag keys).
 *
 * ```yaml
 * dcs:
 *   etcd:
 *     endpoints: [http://10.0.0.1:2379, http://10.0.0.2:2379, http://10.0.0.3:2379]
 *     prefix: /pgfleet        # keys live under <prefix>/<cluster.name>/
 *     ttl: 10s                # leader/member lease; whole seconds
 *     requestTimeout: 2s      # hard limit of one etcd call
 *     username: pgfleet       # etcd auth (optional), with password (PGFLEET_KEEPER_DCS_ETCD_PASSWORD)
 *     cacert: /etc/pgfleet/etcd-ca.pem   # https:// endpoints; cert + key for client-cert auth
 * tags: { noFailover: false, failoverPriority: 1 }
 * cluster:
 *   name: main
 *   syncCount: 1              # ANY 1 (healthy standbys); 0 = asynchronous
 *   failsafeMode: false       # true: etcd down, the primary keeps writing while every member confirms it
 *   members:                  # optional: the nodes, for failsafe checks and `list` before they register
 *     - { name: a, keeperUrl: http://10.0.0.1:8008, conninfo: host=10.0.0.1 port=5432 user=postgres }
 * ```
 */

const memberName = z.string().regex(/^[A-Za-z0-9_.-]{1,63}$/, 'must be 1-63 letters, digits, _ . -');
const httpUrl = z.string().regex(/^https?:\/\/[^\s,]+$/, 'must be an http:// or https:// URL');

/** A boolean from YAML, or from an env variable / flag as text. */
const flag = z
  .union([z.boolean(), z.enum(['true', 'false', 'on', 'off', 'yes', 'no'])])
  .transform((v) => (typeof v === 'boolean' ? v : v === 'true' || v === 'on' || v === 'yes'));

/** A list, or one comma-separated string (what an env variable holds). */
const endpoints = z
  .union([z.array(z.string()), z.string()])
  .transform((v) =>
    (Array.isArray(v) ? v : v.split(',')).map((e) => e.trim().replace(/\/+$/, '')).filter((e) => e !== ''),
  )
  .pipe(z.array(httpUrl).min(1, 'needs at least one etcd endpoint'));

const etcdSchema = z.strictObject({
  endpoints,
  prefix: z
    .string()
    .regex(/^\/?[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*\/?$/, 'must be a key path like /pgfleet')
    .default('/pgfleet'),
  ttl: duration.optional(),
  requestTimeout: duration.optional(),
  /** etcd user (auth enabled on the cluster) and its password. */
  username: z.string().min(1).optional(),
  password: z.string().optional(),
  /** PEM files: the CA of the members' certificates, and a client certificate and key. */
  cacert: z.string().min(1).optional(),
  cert: z.string().min(1).optional(),
  key: z.string().min(1).optional(),
});

const tagsSchema = z.strictObject({
  noFailover: flag.default(false),
  failoverPriority: z.coerce.number().int().min(0).default(DEFAULT_TAGS.failoverPriority),
});

const memberSchema = z.strictObject({
  name: memberName,
  conninfo: conninfo.optional(),
  keeperUrl: httpUrl.optional(),
});

const clusterSchema = z.strictObject({
  name: memberName.default('pgfleet'),
  syncCount: z.coerce.number().int().min(0).default(0),
  failsafeMode: flag.default(false),
  members: z.array(memberSchema).optional(),
});

/** The sections to spread into config.ts's strictObject. */
export const clusterSettingsShape = {
  dcs: z.strictObject({ etcd: etcdSchema }).optional(),
  tags: tagsSchema.default({ noFailover: false, failoverPriority: DEFAULT_TAGS.failoverPriority }),
  cluster: clusterSchema.default({ name: 'pgfleet', syncCount: 0, failsafeMode: false }),
};

const clusterSettingsSchema = z.object(clusterSettingsShape);
type ParsedClusterSettings = z.output<typeof clusterSettingsSchema>;

/** What the rest of the keeper config contributes to these checks and defaults. */
export interface ClusterSettingsContext {
  nodeName: string;
  intervalMs: number;
  failures: number;
}

export interface EtcdSettings {
  endpoints: string[];
  prefix: string;
  ttlSeconds: number;
  requestTimeoutMs: number;
  username?: string;
  password?: string;
  /** Paths of PEM files (read when the DCS client is made: etcd-security.ts). */
  cacert?: string;
  cert?: string;
  key?: string;
}

export interface ClusterMember {
  name: string;
  conninfo?: string;
  keeperUrl?: string;
}

/** The resolved sections: durations in ms (the lease TTL in seconds, as etcd takes it). */
export interface ClusterSettings {
  /** Absent: no DCS (a pair with or without a witness). */
  dcs?: { etcd: EtcdSettings };
  tags: MemberTags;
  cluster: { name: string; syncCount: number; failsafeMode: boolean; members: ClusterMember[] };
}

/**
 * Default lease TTL: the standbys' detection window (interval × failures) plus two
 * intervals, so that one slow or failed renewal never costs a healthy leader its key (and
 * its writes); at least 3 s.
 */
export function defaultTtlSeconds(intervalMs: number, failures: number): number {
  return Math.max(3, Math.ceil((intervalMs * (failures + 2)) / 1000));
}

/** Default per-call limit: one interval, at most a third of the TTL (two calls and a loop fit in it). */
export function defaultRequestTimeoutMs(intervalMs: number, ttlSeconds: number): number {
  return Math.max(100, Math.min(intervalMs, Math.floor((ttlSeconds * 1000) / 3)));
}

type Issue = { path: (string | number)[]; message: string };

/** Cross-field rules; config.ts calls it from its superRefine. */
export function checkClusterSettings(c: ParsedClusterSettings, ctx: ClusterSettingsContext): Issue[] {
  const issues: Issue[] = [];
  const etcd = c.dcs?.etcd;
  if (etcd) {
    if (etcd.ttl !== undefined && (etcd.ttl % 1000 !== 0 || etcd.ttl < 2000)) {
      issues.push({
        path: ['dcs', 'etcd', 'ttl'],
        message: 'must be whole seconds, at least 2s (etcd leases count seconds)',
      });
    }
    const ttlMs = etcd.ttl ?? defaultTtlSeconds(ctx.intervalMs, ctx.failures) * 1000;
    const requestTimeout = etcd.requestTimeout ?? defaultRequestTimeoutMs(ctx.intervalMs, ttlMs / 1000);
    // The leader renews once per interval; a renewal may take up to requestTimeout and one may
    // fail: the lease must outlast that, or a healthy leader loses its key.
    if (ctx.intervalMs + 2 * requestTimeout > ttlMs) {
      issues.push({
        path: ['dcs', 'etcd', etcd.ttl !== undefined ? 'ttl' : 'requestTimeout'],
        message: `ttl (${ttlMs / 1000}s) must be at least interval + 2 × requestTimeout (${(ctx.intervalMs + 2 * requestTimeout) / 1000}s)`,
      });
    }
  }
  if (etcd) {
    if ((etcd.cert === undefined) !== (etcd.key === undefined))
      issues.push({
        path: ['dcs', 'etcd', etcd.cert === undefined ? 'cert' : 'key'],
        message: 'a client certificate needs both dcs.etcd.cert and dcs.etcd.key',
      });
    if (etcd.password !== undefined && etcd.username === undefined)
      issues.push({ path: ['dcs', 'etcd', 'username'], message: 'dcs.etcd.password is set: name its user' });
    if ((etcd.cacert || etcd.cert) && etcd.endpoints.some((e) => !e.startsWith('https://')))
      issues.push({
        path: ['dcs', 'etcd', 'endpoints'],
        message: 'must all be https:// when dcs.etcd.cacert or cert is set',
      });
  }
  const members = c.cluster.members;
  if (etcd) {
    // A standby promotes only if the primary's server itself does not answer (evidence of
    // life, issue 9): a primary whose keeper stopped lets its leader key expire while its
    // server keeps taking writes. So every standby must be able to probe every member.
    if (!members || members.length < 2) {
      issues.push({
        path: ['cluster', 'members'],
        message:
          'dcs.etcd needs cluster.members: every node of the cluster with its conninfo (a standby probes the primary itself before it promotes)',
      });
    } else {
      members.forEach((m, i) => {
        if (m.name !== ctx.nodeName && m.conninfo === undefined)
          issues.push({
            path: ['cluster', 'members', i, 'conninfo'],
            message: `member ${m.name} needs a conninfo: standbys probe it before they promote`,
          });
      });
    }
  }
  if (members) {
    const seen = new Set<string>();
    members.forEach((m, i) => {
      if (seen.has(m.name))
        issues.push({ path: ['cluster', 'members', i, 'name'], message: `duplicate member ${m.name}` });
      seen.add(m.name);
    });
    if (!seen.has(ctx.nodeName)) {
      issues.push({ path: ['cluster', 'members'], message: `must list this node (${ctx.nodeName})` });
    }
    if (c.cluster.syncCount > members.length - 1) {
      issues.push({
        path: ['cluster', 'syncCount'],
        message: `${c.cluster.syncCount} synchronous standbys wanted but the cluster lists ${members.length - 1} standby(s)`,
      });
    }
  }
  if (c.cluster.syncCount > 0 && !etcd) {
    issues.push({ path: ['cluster', 'syncCount'], message: 'quorum commit on N nodes needs dcs.etcd' });
  }
  if (c.cluster.failsafeMode && !etcd) {
    issues.push({ path: ['cluster', 'failsafeMode'], message: 'failsafe mode is a mode of dcs.etcd' });
  }
  return issues;
}

export function resolveClusterSettings(
  c: ParsedClusterSettings,
  ctx: ClusterSettingsContext,
): ClusterSettings {
  const etcd = c.dcs?.etcd;
  const ttlSeconds =
    etcd?.ttl !== undefined ? etcd.ttl / 1000 : defaultTtlSeconds(ctx.intervalMs, ctx.failures);
  return {
    ...(etcd
      ? {
          dcs: {
            etcd: {
              endpoints: etcd.endpoints,
              prefix: etcd.prefix,
              ttlSeconds,
              requestTimeoutMs: etcd.requestTimeout ?? defaultRequestTimeoutMs(ctx.intervalMs, ttlSeconds),
              ...(etcd.username !== undefined ? { username: etcd.username } : {}),
              ...(etcd.password !== undefined ? { password: etcd.password } : {}),
              ...(etcd.cacert !== undefined ? { cacert: etcd.cacert } : {}),
              ...(etcd.cert !== undefined ? { cert: etcd.cert } : {}),
              ...(etcd.key !== undefined ? { key: etcd.key } : {}),
            },
          },
        }
      : {}),
    tags: { noFailover: c.tags.noFailover, failoverPriority: c.tags.failoverPriority },
    cluster: {
      name: c.cluster.name,
      syncCount: c.cluster.syncCount,
      failsafeMode: c.cluster.failsafeMode,
      members: c.cluster.members ?? [],
    },
  };
}

/**
 * Parses the three sections alone (what config.ts will do as part of its schema): every bad
 * key is named in one ConfigError, and a conninfo's password never appears in a message.
 */
export function parseClusterSettings(raw: unknown, ctx: ClusterSettingsContext): ClusterSettings {
  const res = clusterSettingsSchema.safeParse(raw);
  const issues: Issue[] = res.success
    ? checkClusterSettings(res.data, ctx)
    : res.error.issues.map((i) => ({
        path: i.path as (string | number)[],
        message:
          i.code === 'unrecognized_keys'
            ? `unknown key ${i.keys.map((k) => `"${k}"`).join(', ')}`
            : i.message,
      }));
  if (!res.success || issues.length > 0) {
    const keys = issues.map((i) => i.path.map(String).join('.'));
    throw new ConfigError(
      `invalid keeper configuration: ${issues.map((i, n) => `"${keys[n]}": ${i.message}`).join('; ')}`,
      { key: keys[0], keys },
    );
  }
  return resolveClusterSettings(res.data, ctx);
}

/** Env/flag keys of these sections (`PGFLEET_KEEPER_DCS_ETCD_ENDPOINTS`, `--tags-no-failover`). */
export const CLUSTER_SETTINGS_KEYS: readonly ConfigKey[] = [
  { path: 'dcs.etcd.endpoints', kind: 'string' },
  { path: 'dcs.etcd.prefix' },
  { path: 'dcs.etcd.ttl' },
  { path: 'dcs.etcd.requestTimeout' },
  { path: 'dcs.etcd.username' },
  { path: 'dcs.etcd.password' },
  { path: 'dcs.etcd.cacert' },
  { path: 'dcs.etcd.cert' },
  { path: 'dcs.etcd.key' },
  { path: 'tags.noFailover' },
  { path: 'tags.failoverPriority', kind: 'integer' },
  { path: 'cluster.name' },
  { path: 'cluster.syncCount', kind: 'integer' },
  { path: 'cluster.failsafeMode' },
  { path: 'cluster.members', kind: 'yaml' },
];
