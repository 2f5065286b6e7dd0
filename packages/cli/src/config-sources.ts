import { readFileSync } from 'node:fs';
import { ConfigError } from '@pgfleet/connection';
import { parse as parseYaml } from 'yaml';

/**
 * Where a pgfleet app's configuration comes from, in precedence order: a YAML file, then
 * `<PREFIX>_*` environment variables, then command-line flags (each later source wins).
 * These helpers turn each source into a raw object keyed like the file; the app merges
 * them and validates the result once with its own schema.
 */

/** How a text value from env or a flag becomes a config value. */
export type ConfigKeyKind =
  /** Kept as text (durations, sizes, enums, conninfo: the schema parses them). */
  | 'string'
  /** An integer when it looks like one; otherwise left as text for the schema to reject. */
  | 'integer'
  /** A YAML (or JSON) document: lists and mappings, e.g. a mesh's `nodes` or `tables`. */
  | 'yaml';

export interface ConfigKey {
  /** Dotted path as in the file, e.g. `peer.keeperUrl`. */
  path: string;
  kind?: ConfigKeyKind;
}

function words(path: string): string[] {
  return path.split('.').map((part) => part.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase());
}

/** `peer.keeperUrl` with prefix `PGFLEET_KEEPER_` → `PGFLEET_KEEPER_PEER_KEEPER_URL`. */
export function envVarName(prefix: string, path: string): string {
  return prefix + words(path).join('_').toUpperCase();
}

/** `peer.keeperUrl` → `peer-keeper-url` (the dotted form `--peer.keeperUrl` is accepted too). */
export function flagName(path: string): string {
  return words(path).join('_').replaceAll('_', '-');
}

/** Sets `value` at a dotted path, creating intermediate mappings. */
export function setPath(target: Record<string, unknown>, dotted: string, value: unknown): void {
  const parts = dotted.split('.');
  let obj = target;
  for (const part of parts.slice(0, -1)) {
    const next = obj[part];
    if (!isPlainObject(next)) obj[part] = {};
    obj = obj[part] as Record<string, unknown>;
  }
  obj[parts.at(-1) as string] = value;
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Deep merge of plain mappings; anything else (lists included) is replaced by the later layer. */
export function mergeLayers(...layers: Array<Record<string, unknown>>): Record<string, unknown> {
  let out: Record<string, unknown> = {};
  for (const layer of layers) out = mergeTwo(out, layer);
  return out;
}

function mergeTwo(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] = isPlainObject(b) && isPlainObject(v) ? mergeTwo(b, v) : v;
  }
  return out;
}

function coerce(key: ConfigKey, raw: string, source: string): unknown {
  switch (key.kind ?? 'string') {
    case 'integer':
      return /^\s*-?\d+\s*$/.test(raw) ? Number(raw) : raw;
    case 'yaml':
      try {
        return parseYaml(raw);
      } catch (err) {
        // The YAML parser quotes the input in its message: never echo it (it may hold a password).
        const first =
          String((err as Error).message)
            .split('\n')[0]
            ?.replace(/:.*$/, '') ?? 'parse error';
        throw new ConfigError(`${source}: not valid YAML or JSON (${first})`, { key: key.path, source });
      }
    default:
      return raw;
  }
}

export interface EnvOverridesOptions {
  /** e.g. `PGFLEET_MM_`. */
  prefix: string;
  keys: readonly ConfigKey[];
  /** Variables under the prefix that the app reads itself (e.g. `PGFLEET_MM_CONFIG`): not errors. */
  handledElsewhere?: (name: string) => boolean;
}

/**
 * Reads `<prefix><KEY>` variables into a raw config object. A variable under the prefix
 * that names no key is an error naming it (a typo must not be ignored silently).
 */
export function overridesFromEnv(
  env: Record<string, string | undefined>,
  o: EnvOverridesOptions,
): Record<string, unknown> {
  const byName = new Map(o.keys.map((k) => [envVarName(o.prefix, k.path), k]));
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith(o.prefix) || value === undefined) continue;
    if (o.handledElsewhere?.(name)) continue;
    const key = byName.get(name);
    if (!key) throw new ConfigError(`unknown environment variable ${name}`, { key: name });
    setPath(out, key.path, coerce(key, value, `environment variable ${name}`));
  }
  return out;
}

/** Maps every accepted spelling of a key's flag (`peer-keeper-url`, `peer.keeperUrl`) to the key. */
function flagLookup(keys: readonly ConfigKey[]): Map<string, ConfigKey> {
  const lookup = new Map<string, ConfigKey>();
  for (const k of keys) {
    lookup.set(k.path, k);
    lookup.set(flagName(k.path), k);
  }
  return lookup;
}

/** True when `flag` (without dashes) names a config key. */
export function isConfigFlag(flag: string, keys: readonly ConfigKey[]): boolean {
  return flagLookup(keys).has(flag);
}

/**
 * `--interval 500ms`, `--node.name=a`, `--peer-keeper-url x`: flags naming config keys, dotted
 * or kebab-case, into a raw config object. An unknown flag is an error naming it.
 */
export function overridesFromFlags(
  flags: Record<string, string>,
  keys: readonly ConfigKey[],
): Record<string, unknown> {
  const lookup = flagLookup(keys);
  const out: Record<string, unknown> = {};
  for (const [flag, value] of Object.entries(flags)) {
    const key = lookup.get(flag);
    if (!key) throw new ConfigError(`unknown option --${flag}`, { key: flag });
    setPath(out, key.path, coerce(key, value, `option --${flag}`));
  }
  return out;
}

/** Reads a YAML config file that must hold a mapping (an empty file is an empty mapping). */
export function readConfigFile(file: string): Record<string, unknown> {
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
    const first = String((err as Error).message).split('\n')[0] ?? 'parse error';
    throw new ConfigError(`config file ${file} is not valid YAML: ${first}`, { key: 'config', file });
  }
  if (doc === null || doc === undefined) return {};
  if (!isPlainObject(doc))
    throw new ConfigError(`config file ${file} must hold a mapping of keys`, { key: 'config', file });
  return doc;
}
