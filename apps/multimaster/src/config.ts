import { readFileSync } from 'node:fs';
import { ConfigError, redactConninfo } from '@pgfleet/connection';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

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
        conninfo: z.string().min(1),
        rank: z.number().int().min(0).optional(),
      }),
    )
    .min(2, 'a mesh needs at least 2 nodes'),
  // A bare string is shorthand for { name }; normalizing first keeps error paths precise.
  tables: z
    .array(z.preprocess((v) => (typeof v === 'string' ? { name: v } : v), tableObject))
    .min(1, 'list at least one table'),
  conflict: z.enum(CONFLICT_POLICIES).optional(),
  deadLetter: z.enum(DEAD_LETTER_POLICIES).optional(),
  http: z.strictObject({ listen: listen.optional() }).optional(),
  apply: z
    .strictObject({
      /** Source transactions pipelined on one apply connection before waiting for the oldest. */
      maxInFlightTransactions: z.number().int().min(1).max(100_000).optional(),
      /** Rows of one table grouped into one set-based statement. */
      batchRows: z.number().int().min(1).max(50_000).optional(),
      /** synchronous_commit of the apply session; acks always wait for flushed progress. */
      synchronousCommit: z.enum(['on', 'off', 'local', 'remote_write', 'remote_apply']).optional(),
    })
    .optional(),
  reconnect: z
    .strictObject({
      baseDelayMs: z.number().int().min(1).optional(),
      maxDelayMs: z.number().int().min(1).optional(),
    })
    .optional(),
  statusIntervalMs: z.number().int().min(100).optional(),
});

export type RawConfig = z.input<typeof fileSchema>;

export interface NodeConfig {
  name: string;
  conninfo: string;
  /** Lower rank wins an exact commit-timestamp tie. Defaults to the position in `nodes`. */
  rank: number;
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
  http: { listen: HttpListen | null };
  apply: { maxInFlightTransactions: number; batchRows: number; synchronousCommit: string };
  reconnect: { baseDelayMs: number; maxDelayMs: number };
  statusIntervalMs: number;
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
    return { name: n.name, conninfo: n.conninfo, rank: n.rank ?? i };
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
    http: { listen: listenResolved ? parseListen(listenResolved, 'http.listen') : null },
    apply: {
      maxInFlightTransactions: raw.apply?.maxInFlightTransactions ?? 2000,
      batchRows: raw.apply?.batchRows ?? 1000,
      synchronousCommit: raw.apply?.synchronousCommit ?? 'off',
    },
    reconnect,
    statusIntervalMs: raw.statusIntervalMs ?? 1000,
  };
}

export interface LoadConfigOptions {
  /** YAML file; `PGFLEET_MM_CONFIG` when omitted. */
  file?: string;
  /** Environment to read `PGFLEET_MM_*` from (pass `process.env` from the CLI only). */
  env?: Record<string, string | undefined>;
  /** Command-line overrides, highest precedence. */
  flags?: { listen?: string; conflict?: string; deadLetter?: string };
}

/**
 * File < env < flags. Env: PGFLEET_MM_CONFIG (file), PGFLEET_MM_HTTP_LISTEN,
 * PGFLEET_MM_CONFLICT, PGFLEET_MM_DEAD_LETTER, PGFLEET_MM_NODE_<NAME>_CONNINFO
 * (replaces the conninfo of node <name>, so passwords can stay out of the file).
 */
export function loadConfig(options: LoadConfigOptions = {}): ResolvedConfig {
  const env = options.env ?? {};
  const file = options.file ?? env.PGFLEET_MM_CONFIG;
  if (!file)
    throw new ConfigError('no config file: pass --config <file> or set PGFLEET_MM_CONFIG', { key: 'config' });
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${file}: ${(err as Error).message}`, {
      key: 'config',
      file,
    });
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new ConfigError(
      `config file ${file} is not valid YAML: ${redactConninfo((err as Error).message)}`,
      { key: 'config', file },
    );
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
    throw new ConfigError(`config file ${file} must hold a mapping`, { key: '(root)', file });
  }
  return resolveConfig(applyOverrides(doc as Record<string, unknown>, env, options.flags ?? {}), file);
}

/** Merges env and flag overrides into the raw document (pure; exported for tests). */
export function applyOverrides(
  doc: Record<string, unknown>,
  env: Record<string, string | undefined>,
  flags: { listen?: string; conflict?: string; deadLetter?: string },
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...doc };
  const http = { ...((doc.http as Record<string, unknown> | undefined) ?? {}) };
  const listenValue = flags.listen ?? env.PGFLEET_MM_HTTP_LISTEN;
  if (listenValue !== undefined) {
    http.listen = listenValue === 'off' || listenValue === '' ? false : listenValue;
    out.http = http;
  }
  const conflict = flags.conflict ?? env.PGFLEET_MM_CONFLICT;
  if (conflict !== undefined) out.conflict = conflict;
  const deadLetter = flags.deadLetter ?? env.PGFLEET_MM_DEAD_LETTER;
  if (deadLetter !== undefined) out.deadLetter = deadLetter;
  if (Array.isArray(doc.nodes)) {
    out.nodes = doc.nodes.map((n: unknown) => {
      if (n === null || typeof n !== 'object') return n;
      const node = n as Record<string, unknown>;
      const override =
        typeof node.name === 'string'
          ? env[`PGFLEET_MM_NODE_${node.name.toUpperCase()}_CONNINFO`]
          : undefined;
      return override === undefined ? node : { ...node, conninfo: override };
    });
  }
  return out;
}

/** The config as printed by `status`/logs: every conninfo redacted. */
export function redactedConfig(config: ResolvedConfig): ResolvedConfig {
  return { ...config, nodes: config.nodes.map((n) => ({ ...n, conninfo: redactConninfo(n.conninfo) })) };
}
