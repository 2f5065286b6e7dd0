import { ConfigError, formatConninfo, parseConninfo } from '@pgfleet/connection';
import { z } from 'zod';

/**
 * One server of a mesh node that is a keeper-protected primary + standby. Whichever server
 * is primary, the others stream from it through a physical slot named `slot`.
 */
export interface ServerConfig {
  /** The server's name: its keeper's `node.name` and, by default, its physical slot. */
  name: string;
  conninfo: string;
  /** Physical replication slot this server streams through while it is a standby. */
  slot: string;
  /** Its keeper's HTTP API: `GET /primary` answers 200 only on the unfenced primary. */
  keeperUrl: string | null;
}

/** Physical slot names: PostgreSQL allows lower-case letters, digits and underscores, 63 bytes. */
const SLOT_NAME = /^[a-z0-9_]{1,63}$/;

export const serverSchema = z.strictObject({
  name: z.string().regex(SLOT_NAME, 'must match [a-z0-9_]+ (at most 63 characters)'),
  conninfo: z.string().min(1),
  slot: z.string().regex(SLOT_NAME, 'must match [a-z0-9_]+ (at most 63 characters)').optional(),
  keeperUrl: z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' }).optional(),
});

export const serversSchema = z
  .array(serverSchema)
  .min(2, 'a primary + standby node lists at least 2 servers')
  .optional();

export type RawServer = z.output<typeof serverSchema>;

/** Keywords that may differ between the servers of one node in a derived multi-host conninfo. */
const PER_HOST = new Set(['host', 'hostaddr', 'port']);

/**
 * The servers of node `nodes[i]`, validated across each other (unique names and slots), and
 * the node's conninfo: the one given, else one multi-host conninfo over every server with
 * `target_session_attrs=read-write`, so commands that connect by the node's conninfo
 * (`check`, `status`, `init`) land on whichever server is primary now.
 */
export function resolveServers(
  key: string,
  raw: RawServer[] | undefined,
  conninfo: string | undefined,
): { servers: ServerConfig[]; conninfo: string } {
  if (!raw) {
    if (conninfo === undefined)
      throw new ConfigError(`${key}.conninfo: required`, { key: `${key}.conninfo` });
    return { servers: [], conninfo };
  }
  const names = new Set<string>();
  const slots = new Set<string>();
  const servers = raw.map((s, j) => {
    const k = `${key}.servers[${j}]`;
    if (names.has(s.name))
      throw new ConfigError(`${k}.name: server "${s.name}" is listed twice`, { key: `${k}.name` });
    names.add(s.name);
    const slot = s.slot ?? s.name;
    if (slots.has(slot))
      throw new ConfigError(`${k}.slot: physical slot "${slot}" is used by two servers`, {
        key: `${k}.slot`,
      });
    slots.add(slot);
    parseOrThrow(s.conninfo, `${k}.conninfo`);
    return { name: s.name, conninfo: s.conninfo, slot, keeperUrl: s.keeperUrl ?? null };
  });
  return { servers, conninfo: conninfo ?? derivedConninfo(key, servers) };
}

function parseOrThrow(conninfo: string, key: string) {
  try {
    return parseConninfo(conninfo);
  } catch (err) {
    // The parser's message names the bad keyword, never a value.
    throw new ConfigError(`${key}: ${(err as Error).message}`, { key });
  }
}

function derivedConninfo(key: string, servers: ServerConfig[]): string {
  const parsed = servers.map((s, j) => parseOrThrow(s.conninfo, `${key}.servers[${j}].conninfo`));
  const first = parsed[0] as Record<string, string>;
  for (const [j, p] of parsed.entries()) {
    if ((p.host ?? '').includes(',') || (p.hostaddr ?? '').includes(','))
      throw new ConfigError(`${key}.servers[${j}].conninfo: one host per server`, {
        key: `${key}.servers[${j}].conninfo`,
      });
    const keys = new Set([...Object.keys(first), ...Object.keys(p)]);
    for (const k of keys) {
      if (PER_HOST.has(k) || first[k] === p[k]) continue;
      throw new ConfigError(
        `${key}.conninfo: required, because the servers' conninfos differ in "${k}" and cannot be joined into one multi-host conninfo`,
        { key: `${key}.conninfo` },
      );
    }
  }
  const list = (k: string, dflt: string) => parsed.map((p) => p[k] ?? dflt).join(',');
  const joined: Record<string, string> = {
    ...first,
    host: list('host', 'localhost'),
    port: list('port', ''),
  };
  if (parsed.some((p) => p.hostaddr !== undefined)) joined.hostaddr = list('hostaddr', '');
  if (parsed.every((p) => p.port === undefined)) delete joined.port;
  joined.target_session_attrs = 'read-write';
  return formatConninfo(joined);
}
