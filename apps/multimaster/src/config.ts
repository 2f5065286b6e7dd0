import { tmpdir } from 'node:os';
import {
  type ConfigKey,
  envVarName,
  isPlainObject,
  LOG_FORMATS,
  LOG_LEVELS,
  type LogFormat,
  type LogLevel,
  mergeLayers,
  overridesFromEnv,
  overridesFromFlags,
  readConfigFile,
} from '@pgfleet/cli';
import { ConfigError, redactConninfo } from '@pgfleet/connection';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { resolveServers, type ServerConfig, serversSchema } from './ha/server-config.js';

export type { ServerConfig };

/** How a conflict on one table is resolved (see resolveConflict in conflict.ts). */
export const CONFLICT_POLICIES = [
  'last_update_wins',
  'first_update_wins',
  'apply_remote',
  'keep_local',
  'error',
] as const;
export type ConflictPolicy = (typeof CONFLICT_POLICIES)[number];

/** What happens to a transaction the target refuses (constraint, type error). */
export const DEAD_LETTER_POLICIES = ['discard', 'skip_transaction', 'pause_edge'] as const;
export type DeadLetterPolicy = (typeof DEAD_LETTER_POLICIES)[number];

/** Schema holding conflicts, dead letters and the node registry on every node. */
export const METADATA_SCHEMA = 'pgfleet';

const NODE_NAME = /^[a-z0-9_]+$/;
// A slot name is at most 63 bytes: `pgfleet_<src>_<dst>` leaves 27 bytes per node name.
const MAX_NODE_NAME = 27;

const edgeFilter = z.strictObject({
  rowFilter: z.string().min(1).optional(),
  columns: z.array(z.string().min(1)).min(1).optional(),
});

const tableObject = z.strictObject({
  name: z.string().min(1),
  rowFilter: z.string().min(1).optional(),
  columns: z.array(z.string().min(1)).min(1).optional(),
  conflict: z.enum(CONFLICT_POLICIES).optional(),
  /** Per target node: overrides rowFilter / columns on the edges that end at that node. */
  targets: z.record(z.string(), edgeFilter).optional(),
});

const listen = z.union([z.string().min(1), z.literal(false), z.null()]);

const fileSchema = z.strictObject({
  nodes: z
    .array(
      z.strictObject({
        name: z
          .string()
          .regex(NODE_NAME, 'must match [a-z0-9_]+')
          .max(MAX_NODE_NAME, `at most ${MAX_NODE_NAME} characters (slot names are limited to 63 bytes)`),
        // Optional when `servers` is given: then derived from them (multi-host, read-write).
        conninfo: z.string().min(1).optional(),
        rank: z.number().int().min(0).optional(),
        /** The node is a keeper-protected primary + standby: every server that may be its primary. */
        servers: serversSchema,
      }),
    )
    .min(2, 'a mesh needs at least 2 nodes'),
  // A bare string is shorthand for { name }; normalizing first keeps error paths precise.
  tables: z
    .array(z.preprocess((v) => (typeof v === 'string' ? { name: v } : v), tableObject))
    .min(1, 'list at least one table'),
  conflict: z.enum(CONFLICT_POLICIES).optional(),
  deadLetter: z.enum(DEAD_LETTER_POLICIES).optional(),
  conflictLog: z
    .strictObject({
      /** Conflict records older than this many hours are deleted; 0 keeps them however old. */
      retentionHours: z.number().int().min(0).max(87_600).optional(),
      /** At most this many conflict records are kept on a node, the newest; 0: no limit. */
      maxRows: z.number().int().min(0).optional(),
      /** How often each edge prunes the conflict records of its target. */
      pruneIntervalMs: z.number().int().min(100).max(3_600_000).optional(),
    })
    .optional(),
  http: z.strictObject({ listen: listen.optional() }).optional(),
  apply: z
    .strictObject({
      /** Source transactions pipelined on one apply connection before waiting for the oldest. */
      maxInFlightTransactions: z.number().int().min(1).max(100_000).optional(),
      /** Rows of one table grouped into one set-based statement. */
      batchRows: z.number().int().min(1).max(50_000).optional(),
      /** synchronous_commit of the apply session; acks always wait for flushed progress. */
      synchronousCommit: z.enum(['on', 'off', 'local', 'remote_write', 'remote_apply']).optional(),
      /**
       * `on`: sources stream large transactions while in progress (protocol 2) instead of
       * spilling them to their own disk; the replicator spools them until commit.
       */
      streaming: z.enum(['on', 'off']).optional(),
      /** Where streamed transactions are spooled until they commit. */
      spoolDirectory: z.string().min(1).optional(),
    })
    .optional(),
  reconnect: z
    .strictObject({
      baseDelayMs: z.number().int().min(1).optional(),
      maxDelayMs: z.number().int().min(1).optional(),
    })
    .optional(),
  statusIntervalMs: z.number().int().min(100).optional(),
  ha: z
    .strictObject({
      /** Longest wait between reconnects of an edge touching a primary + standby node. */
      retryMs: z.number().int().min(10).max(60_000).optional(),
      /** How often a replicator checks the primary + standby nodes its edges touch. */
      checkIntervalMs: z.number().int().min(50).max(60_000).optional(),
      /** Re-sync window margin before the newest row a peer holds from the failed node (15/16). */
      resyncMarginMs: z.number().int().min(0).max(3_600_000).optional(),
    })
    .optional(),
  log: z
    .strictObject({
      level: z.enum(LOG_LEVELS).optional(),
      /** `auto`: readable lines on a terminal, JSON lines otherwise. */
      format: z.enum(LOG_FORMATS).optional(),
    })
    .optional(),
});

export type RawConfig = z.input<typeof fileSchema>;

export interface NodeConfig {
  name: string;
  conninfo: string;
  /** Lower rank wins an exact commit-timestamp tie. Defaults to the position in `nodes`. */
  rank: number;
  /**
   * The servers of a keeper-protected primary + standby node (empty for a single server).
   * Replicators find the current primary among them and bound what they do by the standby.
   */
  servers: ServerConfig[];
}

/** How replicators follow primary + standby nodes through a failover. */
export interface HaSettings {
  retryMs: number;
  checkIntervalMs: number;
  resyncMarginMs: number;
}

/** How long `pgfleet.conflicts` keeps its records on each node (see conflict-retention.ts). */
export interface ConflictLogSettings {
  retentionHours: number;
  maxRows: number;
  pruneIntervalMs: number;
}

export interface EdgeFilter {
  rowFilter?: string;
  columns?: string[];
}

/** One entry of `tables`: a table, or every table of a schema (`table === '*'`). */
export interface TableSpec {
  schema: string;
  table: string;
  rowFilter?: string;
  columns?: string[];
  conflict: ConflictPolicy;
  targets: Record<string, EdgeFilter>;
}

export interface HttpListen {
  host: string;
  port: number;
}

export interface ResolvedConfig {
  nodes: NodeConfig[];
  tables: TableSpec[];
  conflict: ConflictPolicy;
  deadLetter: DeadLetterPolicy;
  conflictLog: ConflictLogSettings;
  http: { listen: HttpListen | null };
  apply: {
    maxInFlightTransactions: number;
    batchRows: number;
    synchronousCommit: string;
    streaming: boolean;
    spoolDirectory: string;
  };
  reconnect: { baseDelayMs: number; maxDelayMs: number };
  statusIntervalMs: number;
  ha: HaSettings;
  log: { level: LogLevel; format: LogFormat };
}

/** Splits `schema.table` (either part may be double-quoted to hold dots or capitals). */
export function parseTableName(text: string): { schema: string; table: string } | null {
  const parts: string[] = [];
  let i = 0;
  while (i <= text.length) {
    if (text[i] === '"') {
      let out = '';
      i++;
      for (;;) {
        if (i >= text.length) return null;
        if (text[i] === '"') {
          if (text[i + 1] === '"') {
            out += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        out += text[i];
        i++;
      }
      parts.push(out);
    } else {
      const dot = text.indexOf('.', i);
      const end = dot === -1 ? text.length : dot;
      const part = text.slice(i, end);
      if (part.length === 0) return null;
      parts.push(part);
      i = end;
    }
    if (i === text.length) break;
    if (text[i] !== '.') return null;
    i++;
    if (i === text.length) return null;
  }
  if (parts.length !== 2) return null;
  return { schema: parts[0] as string, table: parts[1] as string };
}

function parseListen(value: string, key: string): HttpListen {
  const m = /^(?:(\[[^\]]+\]|[^:]*):)?(\d+)$/.exec(value.trim());
  if (!m) throw new ConfigError(`${key}: expected "host:port" or "port", got "${value}"`, { key });
  const port = Number(m[2]);
  if (port > 65535) throw new ConfigError(`${key}: port ${port} is out of range`, { key });
  const host = (m[1] ?? '').replace(/^\[|\]$/g, '') || '127.0.0.1';
  return { host, port };
}

function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else out += out ? `.${String(p)}` : String(p);
  }
  return out || '(root)';
}

function zodToConfigError(error: z.ZodError, source: string): ConfigError {
  const problems: { key: string; message: string }[] = [];
  for (const issue of error.issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const k of issue.keys)
        problems.push({ key: formatPath([...issue.path, k]), message: 'unknown key' });
    } else {
      // Never echo input values: a conninfo may hold a password.
      problems.push({ key: formatPath(issue.path), message: issue.message });
    }
  }
  const text = problems.map((p) => `${p.key}: ${p.message}`).join('; ');
  return new ConfigError(`invalid multimaster config (${source}): ${text}`, {
    key: problems[0]?.key,
    problems,
  });
}

/** Validates a parsed config object (from YAML or code) and resolves every default. */
export function resolveConfig(input: unknown, source = 'config'): ResolvedConfig {
  const parsed = fileSchema.safeParse(input);
  if (!parsed.success) throw zodToConfigError(parsed.error, source);
  const raw = parsed.data;

  const names = new Set<string>();
  const nodes: NodeConfig[] = raw.nodes.map((n, i) => {
    if (names.has(n.name))
      throw new ConfigError(`nodes[${i}].name: duplicate node name "${n.name}"`, { key: `nodes[${i}].name` });
    names.add(n.name);
    const { servers, conninfo } = resolveServers(`nodes[${i}]`, n.servers, n.conninfo);
    return { name: n.name, conninfo, rank: n.rank ?? i, servers };
  });
  const ranks = new Map<number, string>();
  nodes.forEach((n, i) => {
    const other = ranks.get(n.rank);
    if (other !== undefined) {
      throw new ConfigError(
        `nodes[${i}].rank: rank ${n.rank} is also used by node "${other}"; ranks break ties and must be unique`,
        {
          key: `nodes[${i}].rank`,
        },
      );
    }
    ranks.set(n.rank, n.name);
  });

  const conflict = raw.conflict ?? 'last_update_wins';
  const seen = new Set<string>();
  const tables: TableSpec[] = raw.tables.map((t, i) => {
    const key = `tables[${i}]`;
    const obj = t;
    const name = parseTableName(obj.name);
    if (!name) throw new ConfigError(`${key}: "${obj.name}" is not "schema.table" or "schema.*"`, { key });
    if (name.schema === METADATA_SCHEMA) {
      throw new ConfigError(
        `${key}: schema ${METADATA_SCHEMA} holds pgfleet's own metadata and cannot be replicated`,
        { key },
      );
    }
    const id = `${name.schema}.${name.table}`;
    if (seen.has(id)) throw new ConfigError(`${key}: table ${obj.name} is listed twice`, { key });
    seen.add(id);
    const spec: TableSpec = {
      schema: name.schema,
      table: name.table,
      conflict: obj.conflict ?? conflict,
      targets: {},
    };
    if (name.table === '*' && (t.rowFilter || t.columns || t.targets)) {
      throw new ConfigError(`${key}: rowFilter/columns/targets need an explicit table, not ${obj.name}`, {
        key,
      });
    }
    if (t.rowFilter !== undefined) spec.rowFilter = t.rowFilter;
    if (t.columns !== undefined) spec.columns = t.columns;
    for (const [target, f] of Object.entries(t.targets ?? {})) {
      if (!names.has(target)) {
        throw new ConfigError(`${key}.targets.${target}: no node named "${target}"`, {
          key: `${key}.targets.${target}`,
        });
      }
      spec.targets[target] = { ...f };
    }
    return spec;
  });

  const listenValue = raw.http?.listen;
  // `off` (or '') disables the server, in the file as on the command line and in env.
  const listenResolved =
    listenValue === undefined
      ? '127.0.0.1:9187'
      : listenValue === 'off' || listenValue === ''
        ? false
        : listenValue;
  const reconnect = {
    baseDelayMs: raw.reconnect?.baseDelayMs ?? 200,
    maxDelayMs: raw.reconnect?.maxDelayMs ?? 10_000,
  };
  if (reconnect.maxDelayMs < reconnect.baseDelayMs) {
    throw new ConfigError('reconnect.maxDelayMs: must be >= reconnect.baseDelayMs', {
      key: 'reconnect.maxDelayMs',
    });
  }
  return {
    nodes,
    tables,
    conflict,
    deadLetter: raw.deadLetter ?? 'pause_edge',
    conflictLog: {
      retentionHours: raw.conflictLog?.retentionHours ?? 720,
      maxRows: raw.conflictLog?.maxRows ?? 1_000_000,
      pruneIntervalMs: raw.conflictLog?.pruneIntervalMs ?? 10_000,
    },
    http: { listen: listenResolved ? parseListen(listenResolved, 'http.listen') : null },
    apply: {
      maxInFlightTransactions: raw.apply?.maxInFlightTransactions ?? 2000,
      batchRows: raw.apply?.batchRows ?? 1000,
      synchronousCommit: raw.apply?.synchronousCommit ?? 'off',
      streaming: (raw.apply?.streaming ?? 'off') === 'on',
      spoolDirectory: raw.apply?.spoolDirectory ?? tmpdir(),
    },
    reconnect,
    statusIntervalMs: raw.statusIntervalMs ?? 1000,
    ha: {
      retryMs: raw.ha?.retryMs ?? 250,
      checkIntervalMs: raw.ha?.checkIntervalMs ?? 500,
      resyncMarginMs: raw.ha?.resyncMarginMs ?? 1000,
    },
    log: { level: raw.log?.level ?? 'info', format: raw.log?.format ?? 'auto' },
  };
}

/**
 * Every key settable from the environment (`PGFLEET_MM_<KEY>`) and the command line
 * (`--<key>`, kebab-case or dotted), in the same precedence as the keeper: file < env < flags.
 * `nodes` and `tables` take YAML or JSON text. Per node, `PGFLEET_MM_NODE_<NAME>_CONNINFO`,
 * `PGFLEET_MM_NODE_<NAME>_RANK` and `PGFLEET_MM_NODE_<NAME>_SERVERS` (YAML or JSON list)
 * replace that node's conninfo, rank and servers (passwords can stay out of the file).
 */
export const CONFIG_KEYS: readonly ConfigKey[] = [
  { path: 'nodes', kind: 'yaml' },
  { path: 'tables', kind: 'yaml' },
  { path: 'conflict' },
  { path: 'deadLetter' },
  { path: 'conflictLog.retentionHours', kind: 'integer' },
  { path: 'conflictLog.maxRows', kind: 'integer' },
  { path: 'conflictLog.pruneIntervalMs', kind: 'integer' },
  { path: 'http.listen' },
  { path: 'apply.maxInFlightTransactions', kind: 'integer' },
  { path: 'apply.batchRows', kind: 'integer' },
  { path: 'apply.synchronousCommit' },
  { path: 'apply.streaming' },
  { path: 'apply.spoolDirectory' },
  { path: 'reconnect.baseDelayMs', kind: 'integer' },
  { path: 'reconnect.maxDelayMs', kind: 'integer' },
  { path: 'statusIntervalMs', kind: 'integer' },
  { path: 'ha.retryMs', kind: 'integer' },
  { path: 'ha.checkIntervalMs', kind: 'integer' },
  { path: 'ha.resyncMarginMs', kind: 'integer' },
  { path: 'log.level' },
  { path: 'log.format' },
];

export const ENV_PREFIX = 'PGFLEET_MM_';
const NODE_ENV = /^PGFLEET_MM_NODE_([A-Z0-9_]+?)_(CONNINFO|RANK|SERVERS)$/;

/** `apply.batchRows` → `PGFLEET_MM_APPLY_BATCH_ROWS`. */
export function envName(key: string): string {
  return envVarName(ENV_PREFIX, key);
}

export interface LoadConfigOptions {
  /** YAML file; `PGFLEET_MM_CONFIG` when omitted. Optional when env gives nodes and tables. */
  file?: string;
  /** Environment to read `PGFLEET_MM_*` from (pass `process.env` from the CLI only). */
  env?: Record<string, string | undefined>;
  /**
   * Command-line overrides, highest precedence, keyed by flag name without dashes
   * (`conflict`, `http-listen`, `apply.batchRows`...). `listen` is short for `http-listen`.
   */
  flags?: Record<string, string>;
}

/** File < env < flags, validated once. */
export function loadConfig(options: LoadConfigOptions = {}): ResolvedConfig {
  const env = options.env ?? {};
  const file = options.file ?? env.PGFLEET_MM_CONFIG;
  const fromEnv = overridesFromEnv(env, {
    prefix: ENV_PREFIX,
    keys: CONFIG_KEYS,
    handledElsewhere: (name) => name === `${ENV_PREFIX}CONFIG` || NODE_ENV.test(name),
  });
  const { listen, ...flags } = options.flags ?? {};
  const fromFlags = overridesFromFlags(
    listen === undefined ? flags : { ...flags, 'http-listen': listen },
    CONFIG_KEYS,
  );
  const raw = mergeLayers(file ? readConfigFile(file) : {}, fromEnv, fromFlags);
  if (!file && raw.nodes === undefined)
    throw new ConfigError(
      'no configuration: pass --config <file>, set PGFLEET_MM_CONFIG, or give PGFLEET_MM_NODES and PGFLEET_MM_TABLES',
      { key: 'config' },
    );
  return resolveConfig(applyNodeEnv(raw, env), file ?? 'environment');
}

/**
 * Applies `PGFLEET_MM_NODE_<NAME>_CONNINFO` / `_RANK` to the node of that name (pure;
 * exported for tests). A variable naming no node is an error naming it.
 */
export function applyNodeEnv(
  doc: Record<string, unknown>,
  env: Record<string, string | undefined>,
): Record<string, unknown> {
  const nodes = Array.isArray(doc.nodes) ? doc.nodes : [];
  const names = new Set(
    nodes.map((n) => (isPlainObject(n) && typeof n.name === 'string' ? n.name.toUpperCase() : null)),
  );
  for (const [name, value] of Object.entries(env)) {
    const m = NODE_ENV.exec(name);
    if (!m || value === undefined) continue;
    if (!names.has(m[1] as string))
      throw new ConfigError(`environment variable ${name} names no node of the mesh`, { key: name });
  }
  if (!Array.isArray(doc.nodes)) return doc;
  return {
    ...doc,
    nodes: doc.nodes.map((n: unknown) => {
      if (!isPlainObject(n) || typeof n.name !== 'string') return n;
      const prefix = `${ENV_PREFIX}NODE_${n.name.toUpperCase()}_`;
      const conninfo = env[`${prefix}CONNINFO`];
      const rank = env[`${prefix}RANK`];
      const servers = env[`${prefix}SERVERS`];
      return {
        ...n,
        ...(conninfo !== undefined ? { conninfo } : {}),
        ...(servers !== undefined
          ? { servers: parseYamlList(servers, `environment variable ${prefix}SERVERS`) }
          : {}),
        ...(rank !== undefined ? { rank: /^\s*\d+\s*$/.test(rank) ? Number(rank) : rank } : {}),
      };
    }),
  };
}

function parseYamlList(text: string, source: string): unknown {
  try {
    return parseYaml(text);
  } catch {
    // Never echo the text: it may hold a password.
    throw new ConfigError(`${source}: not valid YAML or JSON`, { key: source });
  }
}

/** The config as printed by `status`/logs: every conninfo redacted. */
export function redactedConfig(config: ResolvedConfig): ResolvedConfig {
  return {
    ...config,
    nodes: config.nodes.map((n) => ({
      ...n,
      conninfo: redactConninfo(n.conninfo),
      servers: n.servers.map((s) => ({ ...s, conninfo: redactConninfo(s.conninfo) })),
    })),
  };
}
