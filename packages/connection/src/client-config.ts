import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import type { ClientConfig } from 'pg';
import type { ConnParams } from './conninfo.js';
import { ConfigError, ConninfoError } from './errors.js';
import { type PgpassOptions, passwordFromEnvironment } from './pgpass.js';

/** One host to try, after splitting libpq's comma-separated host/hostaddr/port lists. */
export interface HostTarget {
  /** Host name, IP address or unix socket directory (starts with `/`). */
  host: string;
  port: number;
  /** libpq's hostaddr: the address actually dialled, `host` still names it (TLS, messages). */
  hostaddr?: string;
}

/** node-pg's ClientConfig plus the startup parameter @types/pg does not declare. */
export type PgClientConfig = ClientConfig & { replication?: string };

export interface ClientConfigOptions {
  connectTimeoutMs?: number;
  statementTimeoutMs?: number;
  applicationName?: string;
  replication?: 'database' | true;
  /**
   * Server settings for the session, sent in the startup packet (`options=-c name=value`)
   * after the conninfo's own `options`, so they win and cost no round trip.
   */
  settings?: Readonly<Record<string, string>>;
  /** Where a missing password is looked up (PGPASSWORD, password file); default: process.env. */
  pgpass?: PgpassOptions;
}

const DEFAULT_HOST = 'localhost';
const DEFAULT_PORT = 5432;

function splitList(value: string | undefined): string[] {
  return value === undefined || value === '' ? [] : value.split(',');
}

function parsePort(raw: string): number {
  const port = Number(raw);
  if (!/^\d+$/.test(raw) || port < 1 || port > 65535) {
    throw new ConninfoError(`invalid port number: "${raw}"`, { keyword: 'port' });
  }
  return port;
}

/**
 * The hosts to try, in order, per libpq's rules: `host` and `hostaddr` are comma lists
 * of the same length (either may be absent), `port` is either one port for all or one
 * per host (an empty entry means the default).
 */
export function resolveTargets(params: ConnParams): HostTarget[] {
  const hosts = splitList(params.host);
  const addrs = splitList(params.hostaddr);
  const ports = splitList(params.port);
  if (hosts.length && addrs.length && hosts.length !== addrs.length) {
    throw new ConninfoError(`could not match ${addrs.length} host addresses to ${hosts.length} host names`, {
      keyword: 'hostaddr',
    });
  }
  const n = Math.max(hosts.length, addrs.length, 1);
  if (ports.length > 1 && ports.length !== n) {
    throw new ConninfoError(`could not match ${ports.length} port numbers to ${n} hosts`, {
      keyword: 'port',
    });
  }
  const targets: HostTarget[] = [];
  for (let i = 0; i < n; i++) {
    const rawPort = ports.length === 1 ? ports[0]! : (ports[i] ?? '');
    const addr = addrs[i] ?? '';
    const host = hosts[i] || addr || DEFAULT_HOST;
    const target: HostTarget = { host, port: rawPort === '' ? DEFAULT_PORT : parsePort(rawPort) };
    if (addr !== '') target.hostaddr = addr;
    targets.push(target);
  }
  return targets;
}

/**
 * `params` narrowed to one of its targets (as {@link resolveTargets} lists them), in key=value
 * form: for a library that takes one host (pg-logical-replication) once a multi-host conninfo
 * has been resolved to the server to use. `target_session_attrs` and `load_balance_hosts` go,
 * they mean nothing for a single host.
 */
export function singleHostConninfo(params: ConnParams, target: HostTarget): ConnParams {
  const out: ConnParams = { ...params, host: target.host, port: String(target.port) };
  delete out.hostaddr;
  delete out.target_session_attrs;
  delete out.load_balance_hosts;
  if (target.hostaddr !== undefined) out.hostaddr = target.hostaddr;
  return out;
}

/** `host:port` (IPv6 in brackets) for messages and logs. */
export function targetLabel(t: HostTarget): string {
  return t.host.includes(':') ? `[${t.host}]:${t.port}` : `${t.host}:${t.port}`;
}

/** Shuffles targets when `load_balance_hosts=random` (Fisher–Yates with the injected random). */
export function orderTargets(targets: HostTarget[], params: ConnParams, random: () => number): HostTarget[] {
  const mode = params.load_balance_hosts ?? 'disable';
  if (mode === 'disable') return targets;
  if (mode !== 'random') {
    throw new ConninfoError(`invalid load_balance_hosts value: "${mode}"`, { keyword: 'load_balance_hosts' });
  }
  const out = [...targets];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/**
 * libpq keywords node-pg cannot honour where silently ignoring them would weaken what the
 * user asked for (auth requirements, service files). Others (gsslib, sslcompression,
 * keepalives_interval, ...) only tune behaviour and are ignored.
 */
function rejectUnsupported(params: ConnParams): void {
  const refuse = (key: string, why: string) => {
    throw new ConfigError(`connection option "${key}" is not supported by pgfleet: ${why}`, { key });
  };
  if (params.service) refuse('service', 'spell the parameters out instead of a pg_service.conf entry');
  if (params.requirepeer) refuse('requirepeer', 'peer credential checks are not available in node-pg');
  if (params.require_auth) refuse('require_auth', 'node-pg cannot restrict the authentication method');
  if (params.gssencmode === 'require') refuse('gssencmode', 'GSSAPI encryption is not available in node-pg');
  if (params.sslcertmode === 'require') refuse('sslcertmode', 'use sslcert/sslkey with sslmode=verify-full');
}

function seconds(params: ConnParams, key: string): number | undefined {
  const raw = params[key];
  if (raw === undefined || raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0)
    throw new ConninfoError(`invalid integer value "${raw}" for ${key}`, { keyword: key });
  return n;
}

/**
 * node-pg TLS options for libpq's sslmode. node-pg cannot fall back between plain and TLS
 * inside one connection, so `prefer` returns `prefer` and the caller retries in plain text
 * when the server refuses TLS; absent sslmode means plain text (node-pg's default), not
 * libpq's `prefer`, so probes do not pay a refused TLS round trip.
 */
export function sslFor(
  params: ConnParams,
  target: HostTarget,
  readFile: (path: string) => Buffer | string = readFileSync,
): ConnectionOptions | false | 'prefer' {
  const mode = params.sslmode ?? 'disable';
  const files = (): ConnectionOptions => {
    const out: ConnectionOptions = {};
    if (params.sslrootcert && params.sslrootcert !== 'system') out.ca = readFile(params.sslrootcert);
    if (params.sslcert) out.cert = readFile(params.sslcert);
    if (params.sslkey) out.key = readFile(params.sslkey);
    if (params.sslpassword) out.passphrase = params.sslpassword;
    return out;
  };
  switch (mode) {
    case 'disable':
    case 'allow':
      return false;
    case 'prefer':
      return 'prefer';
    case 'require':
      // libpq: with a root cert file present, require behaves like verify-ca.
      if (params.sslrootcert)
        return { ...files(), rejectUnauthorized: true, checkServerIdentity: () => undefined };
      return { ...files(), rejectUnauthorized: false };
    case 'verify-ca':
      return { ...files(), rejectUnauthorized: true, checkServerIdentity: () => undefined };
    case 'verify-full':
      return { ...files(), rejectUnauthorized: true, servername: target.host };
    default:
      throw new ConninfoError(`invalid sslmode value: "${mode}"`, { keyword: 'sslmode' });
  }
}

/**
 * node-pg ClientConfig for one target. Explicit options win over conninfo keywords
 * (connect_timeout, application_name, replication).
 */
export function clientConfigFor(
  params: ConnParams,
  target: HostTarget,
  opts: ClientConfigOptions = {},
  ssl: ConnectionOptions | false = false,
): PgClientConfig {
  rejectUnsupported(params);
  const config: PgClientConfig = {
    host: target.hostaddr ?? target.host,
    port: target.port,
    ssl,
    keepAlive: params.keepalives !== '0',
  };
  if (params.user !== undefined) config.user = params.user;
  if (params.password !== undefined && params.password !== '') config.password = params.password;
  else {
    // Looked up by us when the server asks for it: node-pg's own ~/.pgpass reading prints a
    // deprecation warning on every connection and ignores `passfile` (see pgpass.ts).
    const lookup = (cp: { user?: string; database?: string }) =>
      passwordFromEnvironment(
        params,
        { host: target.host, port: String(target.port), dbname: cp.database ?? '', user: cp.user ?? '' },
        opts.pgpass,
      );
    config.password = lookup as unknown as () => Promise<string>;
  }
  if (params.dbname !== undefined) config.database = params.dbname;
  const appName = opts.applicationName ?? params.application_name;
  if (appName !== undefined) config.application_name = appName;
  if (params.fallback_application_name !== undefined) {
    config.fallback_application_name = params.fallback_application_name;
  }
  const options = [params.options, settingsOptions(opts.settings ?? {})].filter((o) => o).join(' ');
  if (options !== '') config.options = options;
  if (params.client_encoding !== undefined) config.client_encoding = params.client_encoding;
  const idle = seconds(params, 'keepalives_idle');
  if (config.keepAlive && idle !== undefined) config.keepAliveInitialDelayMillis = idle * 1000;
  const timeout = connectTimeoutFor(params, opts);
  if (timeout !== undefined) config.connectionTimeoutMillis = timeout;
  if (opts.statementTimeoutMs !== undefined) config.statement_timeout = opts.statementTimeoutMs;
  const replication = replicationMode(opts.replication ?? params.replication);
  if (replication) config.replication = replication;
  if (params.channel_binding === 'require') config.enableChannelBinding = true;
  // TLS SNI and verification still use the name when hostaddr picks the address.
  if (
    target.hostaddr &&
    ssl &&
    typeof ssl === 'object' &&
    ssl.servername === undefined &&
    !target.host.startsWith('/')
  ) {
    config.ssl = { ...ssl, servername: target.host };
  }
  return config;
}

/**
 * `-c name=value ...` for the startup packet's `options`. The server splits it on spaces
 * and takes a backslash as escaping the next character (pg_split_opts in postinit.c).
 */
export function settingsOptions(settings: Readonly<Record<string, string>>): string {
  const esc = (s: string) => s.replace(/[\\\s]/g, (c) => `\\${c}`);
  return Object.entries(settings)
    .map(([k, v]) => {
      if (!/^[A-Za-z_][A-Za-z0-9_.]*$/.test(k))
        throw new ConfigError(`invalid server setting name: "${k}"`, { key: k });
      return `-c ${k}=${esc(v)}`;
    })
    .join(' ');
}

/**
 * Per-host connect timeout: the explicit option, else libpq's connect_timeout (seconds;
 * libpq raises values below 2 to 2, and 0 means none).
 */
export function connectTimeoutFor(params: ConnParams, opts: ClientConfigOptions): number | undefined {
  if (opts.connectTimeoutMs !== undefined)
    return opts.connectTimeoutMs > 0 ? opts.connectTimeoutMs : undefined;
  const s = seconds(params, 'connect_timeout');
  if (s === undefined || s === 0) return undefined;
  return Math.max(2, Math.floor(s)) * 1000;
}

/** libpq's boolean spellings for `replication`, plus `database` for a logical walsender. */
function replicationMode(value: string | true | undefined): 'true' | 'database' | undefined {
  if (value === undefined || value === '') return undefined;
  if (value === true) return 'true';
  const v = value.toLowerCase();
  if (v === 'database') return 'database';
  if (['true', 'on', 'yes', '1'].includes(v)) return 'true';
  if (['false', 'off', 'no', '0'].includes(v)) return undefined;
  throw new ConninfoError(`invalid replication value: "${value}"`, { keyword: 'replication' });
}
