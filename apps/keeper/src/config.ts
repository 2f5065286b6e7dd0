import {
  type ConfigKey,
  envVarName,
  LOG_FORMATS,
  LOG_LEVELS,
  type LogFormat,
  type LogLevel,
  mergeLayers,
  overridesFromEnv,
  overridesFromFlags,
  readConfigFile,
} from '@pgfleet/cli';
import { ConfigError } from '@pgfleet/connection';
import { z } from 'zod';
import {
  CLUSTER_SETTINGS_KEYS,
  type ClusterMember,
  checkClusterSettings,
  clusterSettingsShape,
  type EtcdSettings,
  resolveClusterSettings,
} from './cluster-settings.js';
import type { MemberTags } from './cluster-types.js';
import { conninfo, duration } from './config-fields.js';
import { parseSize } from './units.js';

/**
 * The keeper's configuration, parsed once at the edge: YAML file, then `PGFLEET_KEEPER_*`
 * environment variables, then command-line flags (each later source wins), validated by one
 * strict zod schema into a resolved, typed object. Durations become milliseconds and sizes
 * bytes; unknown keys are rejected by name.
 */

const size = z.union([z.string(), z.number()]).transform((v, ctx) => {
  const bytes = parseSize(v);
  if (bytes === undefined) {
    ctx.addIssue({ code: 'custom', message: `bad size ${JSON.stringify(v)} (use e.g. '0', '64kB', '1MiB')` });
    return z.NEVER;
  }
  return bytes;
});

const listen = z.union([z.string(), z.number()]).transform((v, ctx) => {
  const parsed = parseListen(v);
  if (!parsed) {
    ctx.addIssue({
      code: 'custom',
      message: `bad listen address ${JSON.stringify(v)} (use 'host:port' or a port)`,
    });
    return z.NEVER;
  }
  return parsed;
});

const url = z.string().regex(/^https?:\/\/[^\s]+$/, 'must be an http:// or https:// URL');
const hook = z.string().min(1).optional();

const schema = z
  .strictObject({
    mode: z.enum(['node', 'witness']).default('node'),
    node: z.strictObject({
      name: z.string().regex(/^[A-Za-z0-9_.-]{1,63}$/, 'must be 1-63 letters, digits, _ . -'),
      conninfo: conninfo.optional(),
      /** The local server's data directory: lets the keeper fence it without SQL (signals). */
      pgdata: z.string().regex(/^\//, 'must be an absolute path').optional(),
    }),
    peer: z
      .strictObject({
        /** Also the application_name the standby streams with (matched in pg_stat_replication). */
        name: z.string().regex(/^[A-Za-z0-9_.-]{1,63}$/, 'must be 1-63 letters, digits, _ . -'),
        conninfo,
        keeperUrl: url.optional(),
      })
      .optional(),
    witness: z.strictObject({ url }).optional(),
    /** Witness mode only: the data nodes the witness probes when asked for a vote. */
    members: z.record(z.string().min(1), conninfo).optional(),
    interval: duration.default(1000),
    failures: z.number().int().min(1).max(100).default(3),
    connectTimeout: duration.optional(),
    maxLagOnFailover: size.default(1024 * 1024),
    startupGrace: duration.default(30_000),
    fenceAfter: duration.optional(),
    syncStandbyNames: z.string().default(''),
    syncRestoreLag: size.default(1024 * 1024),
    restartBudget: duration.optional(),
    hooks: z
      .strictObject({
        onPromote: hook,
        onDegrade: hook,
        onRestore: hook,
        onRoleChange: hook,
        onFence: hook,
        timeout: duration.default(30_000),
      })
      .default({ timeout: 30_000 }),
    http: z
      .strictObject({
        listen: listen.default({ host: '127.0.0.1', port: 8008 }),
        token: z.string().min(8, 'must be at least 8 characters').optional(),
      })
      .default({ listen: { host: '127.0.0.1', port: 8008 } }),
    log: z
      .strictObject({
        level: z.enum(LOG_LEVELS).default('info'),
        /** `auto`: readable lines on a terminal, JSON lines otherwise (journald, files, pipes). */
        format: z.enum(LOG_FORMATS).default('auto'),
      })
      .default({ level: 'info', format: 'auto' }),
    ...clusterSettingsShape,
  })
  .superRefine((c, ctx) => {
    const etcd = c.dcs?.etcd !== undefined;
    if (c.mode === 'node') {
      if (!c.node.conninfo)
        ctx.addIssue({ code: 'custom', path: ['node', 'conninfo'], message: 'required in node mode' });
      if (!c.peer && !etcd)
        ctx.addIssue({
          code: 'custom',
          path: ['peer', 'conninfo'],
          message: 'required in node mode without dcs.etcd (a pair)',
        });
      if (etcd && c.peer)
        ctx.addIssue({
          code: 'custom',
          path: ['peer'],
          message: 'not used with dcs.etcd: list the other nodes under cluster.members',
        });
      if (etcd && c.witness)
        ctx.addIssue({
          code: 'custom',
          path: ['witness', 'url'],
          message: 'not used with dcs.etcd: etcd is the arbiter (the witness is for a pair without etcd)',
        });
      if (etcd && c.syncStandbyNames.trim() !== '')
        ctx.addIssue({
          code: 'custom',
          path: ['syncStandbyNames'],
          message:
            'not used with dcs.etcd: the keeper manages synchronous_standby_names from cluster.syncCount',
        });
      if (c.members)
        ctx.addIssue({ code: 'custom', path: ['members'], message: 'only allowed in witness mode' });
    } else {
      if (!c.members || Object.keys(c.members).length < 2)
        ctx.addIssue({ code: 'custom', path: ['members'], message: 'witness mode needs the two data nodes' });
      if (c.witness)
        ctx.addIssue({ code: 'custom', path: ['witness', 'url'], message: 'not allowed in witness mode' });
    }
    const connectTimeout = c.connectTimeout ?? defaultConnectTimeout(c.interval);
    if (connectTimeout > c.interval)
      ctx.addIssue({ code: 'custom', path: ['connectTimeout'], message: 'must not exceed interval' });
    const fenceAfter = c.fenceAfter ?? defaultFenceAfter(c.interval, c.failures);
    if (fenceAfter >= c.failures * c.interval)
      ctx.addIssue({
        code: 'custom',
        path: ['fenceAfter'],
        message: 'must be shorter than interval × failures (the standby promotion deadline)',
      });
    for (const issue of checkClusterSettings(c, {
      nodeName: c.node.name,
      intervalMs: c.interval,
      failures: c.failures,
    }))
      ctx.addIssue({ code: 'custom', ...issue });
    if ((c.peer?.keeperUrl || c.witness || c.mode === 'witness') && !c.http.token)
      ctx.addIssue({
        code: 'custom',
        path: ['http', 'token'],
        message: 'required when keepers talk to each other (peer.keeperUrl, witness, witness mode)',
      });
    if (c.cluster.failsafeMode && !c.http.token)
      ctx.addIssue({
        code: 'custom',
        path: ['http', 'token'],
        message: 'required with cluster.failsafeMode: the primary asks every member through its HTTP API',
      });
  });

function defaultConnectTimeout(interval: number): number {
  return Math.max(100, Math.min(interval, Math.round(interval * 0.8)));
}

function defaultFenceAfter(interval: number, failures: number): number {
  return Math.max(Math.round(interval / 2), (failures - 1) * interval);
}

type Parsed = z.output<typeof schema>;

/** The resolved keeper configuration: every duration in ms, every size in bytes. */
export interface KeeperConfig {
  mode: 'node' | 'witness';
  node: { name: string; conninfo: string; pgdata?: string };
  /** The other data node. In witness mode: empty name and conninfo. */
  peer: { name: string; conninfo: string; keeperUrl?: string };
  witness?: { url: string };
  members: Record<string, string>;
  intervalMs: number;
  failures: number;
  connectTimeoutMs: number;
  maxLagOnFailover: number;
  startupGraceMs: number;
  fenceAfterMs: number;
  /** What "sync on" means for this pair; '' means an asynchronous pair (nothing to degrade). */
  syncStandbyNames: string;
  syncRestoreLag: number;
  restartBudgetMs?: number;
  hooks: {
    onPromote?: string;
    onDegrade?: string;
    onRestore?: string;
    onRoleChange?: string;
    onFence?: string;
    timeoutMs: number;
  };
  http: { host: string; port: number; token?: string };
  logLevel: LogLevel;
  logFormat: LogFormat;
  /** Set: an N-node cluster with etcd as the arbiter (no peer, no witness). */
  dcs?: { etcd: EtcdSettings };
  /** This node's tags, published in its member key. */
  tags: MemberTags;
  /** The cluster on etcd: its name (the key namespace) and the members this keeper may probe. */
  cluster: { name: string; syncCount: number; failsafeMode: boolean; members: ClusterMember[] };
}

function resolve(p: Parsed): KeeperConfig {
  return {
    mode: p.mode,
    node: {
      name: p.node.name,
      conninfo: p.node.conninfo ?? '',
      ...(p.node.pgdata ? { pgdata: p.node.pgdata } : {}),
    },
    peer: p.peer ? { ...p.peer } : { name: '', conninfo: '' },
    ...(p.witness ? { witness: p.witness } : {}),
    members: p.members ?? {},
    intervalMs: p.interval,
    failures: p.failures,
    connectTimeoutMs: p.connectTimeout ?? defaultConnectTimeout(p.interval),
    maxLagOnFailover: p.maxLagOnFailover,
    startupGraceMs: p.startupGrace,
    fenceAfterMs: p.fenceAfter ?? defaultFenceAfter(p.interval, p.failures),
    syncStandbyNames: p.syncStandbyNames.trim(),
    syncRestoreLag: p.syncRestoreLag,
    ...(p.restartBudget !== undefined ? { restartBudgetMs: p.restartBudget } : {}),
    hooks: {
      ...(p.hooks.onPromote ? { onPromote: p.hooks.onPromote } : {}),
      ...(p.hooks.onDegrade ? { onDegrade: p.hooks.onDegrade } : {}),
      ...(p.hooks.onRestore ? { onRestore: p.hooks.onRestore } : {}),
      ...(p.hooks.onRoleChange ? { onRoleChange: p.hooks.onRoleChange } : {}),
      ...(p.hooks.onFence ? { onFence: p.hooks.onFence } : {}),
      timeoutMs: p.hooks.timeout,
    },
    http: { ...p.http.listen, ...(p.http.token ? { token: p.http.token } : {}) },
    logLevel: p.log.level,
    logFormat: p.log.format,
    ...resolveClusterSettings(p, { nodeName: p.node.name, intervalMs: p.interval, failures: p.failures }),
  };
}

/** Every settable leaf, as a dotted path. Drives env variable names and CLI flags. */
export const CONFIG_KEYS = [
  'mode',
  'node.name',
  'node.conninfo',
  'node.pgdata',
  'peer.name',
  'peer.conninfo',
  'peer.keeperUrl',
  'witness.url',
  'interval',
  'failures',
  'connectTimeout',
  'maxLagOnFailover',
  'startupGrace',
  'fenceAfter',
  'syncStandbyNames',
  'syncRestoreLag',
  'restartBudget',
  'hooks.onPromote',
  'hooks.onDegrade',
  'hooks.onRestore',
  'hooks.onRoleChange',
  'hooks.onFence',
  'hooks.timeout',
  'http.listen',
  'http.token',
  'log.level',
  'log.format',
] as const;

const INTEGER_KEYS = new Set<string>(['failures']);
const KEYS: ConfigKey[] = [
  ...CONFIG_KEYS.map(
    (path): ConfigKey => ({
      path,
      kind: INTEGER_KEYS.has(path) ? 'integer' : 'string',
    }),
  ),
  ...CLUSTER_SETTINGS_KEYS,
];
export const ENV_PREFIX = 'PGFLEET_KEEPER_';

/** `peer.keeperUrl` → `PGFLEET_KEEPER_PEER_KEEPER_URL`. */
export function envName(key: string): string {
  return envVarName(ENV_PREFIX, key);
}

/** Reads `PGFLEET_KEEPER_*` variables; an unknown one is an error naming it. */
export function configFromEnv(env: Record<string, string | undefined>): Record<string, unknown> {
  return overridesFromEnv(env, {
    prefix: ENV_PREFIX,
    keys: KEYS,
    handledElsewhere: (name) => name === `${ENV_PREFIX}CONFIG`,
  });
}

/**
 * `--interval 500ms`, `--node.name=a`, `--peer-keeper-url x`: any key of CONFIG_KEYS, dotted
 * or kebab-case. Returns the overrides; throws a ConfigError naming an unknown flag.
 */
export function configFromFlags(flags: Record<string, string>): Record<string, unknown> {
  return overridesFromFlags(flags, KEYS);
}

function describeIssue(issue: z.core.$ZodIssue): { key: string; message: string } {
  const path = issue.path.map(String).join('.');
  if (issue.code === 'unrecognized_keys') {
    const keys = issue.keys.map((k) => (path ? `${path}.${k}` : k));
    return { key: keys[0]!, message: `unknown key ${keys.map((k) => `"${k}"`).join(', ')}` };
  }
  if (issue.code === 'invalid_type' && issue.input === undefined)
    return { key: path, message: `missing key "${path}"` };
  return { key: path, message: `"${path}": ${issue.message}` };
}

/** Validates a merged raw object; throws a ConfigError whose message names every bad key. */
export function parseConfig(raw: unknown): KeeperConfig {
  const res = schema.safeParse(raw);
  if (!res.success) {
    const described = res.error.issues.map(describeIssue);
    throw new ConfigError(`invalid keeper configuration: ${described.map((d) => d.message).join('; ')}`, {
      key: described[0]?.key,
      keys: described.map((d) => d.key),
    });
  }
  return resolve(res.data);
}

export interface LoadConfigOptions {
  /** Path of a YAML file. */
  file?: string;
  env?: Record<string, string | undefined>;
  /** Flag overrides, keyed by flag name without the dashes (see configFromFlags). */
  flags?: Record<string, string>;
  /** Extra overrides applied last (for embedding: tests, the demo). */
  overrides?: Record<string, unknown>;
}

/**
 * File, then env, then flags, then overrides; validated once. The file is `file`, else
 * `PGFLEET_KEEPER_CONFIG` from `env`; with neither, env and flags alone must suffice.
 */
export function loadConfig(opts: LoadConfigOptions = {}): KeeperConfig {
  const file = opts.file ?? opts.env?.[`${ENV_PREFIX}CONFIG`];
  return parseConfig(
    mergeLayers(
      file ? readConfigFile(file) : {},
      opts.env ? configFromEnv(opts.env) : {},
      opts.flags ? configFromFlags(opts.flags) : {},
      opts.overrides ?? {},
    ),
  );
}

/** `'127.0.0.1:8008'`, `':8008'`, `8008`, `'[::1]:8008'` → host + port. */
export function parseListen(v: string | number): { host: string; port: number } | undefined {
  const portOk = (p: number) => Number.isInteger(p) && p >= 0 && p <= 65535;
  if (typeof v === 'number') return portOk(v) ? { host: '127.0.0.1', port: v } : undefined;
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(v.trim()) ?? /^()()(\d+)$/.exec(v.trim());
  if (!m) return undefined;
  const port = Number(m[3]);
  if (!portOk(port)) return undefined;
  return { host: m[1] || m[2] || '127.0.0.1', port };
}
