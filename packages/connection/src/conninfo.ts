import { ConninfoError } from './errors.js';

/** Parsed connection parameters, keyed by libpq keyword (`host`, `port`, `dbname`, ...). */
export type ConnParams = Record<string, string>;

/**
 * Every keyword libpq accepts (PostgreSQL 18, src/interfaces/libpq/fe-connect.c, PQconninfoOptions).
 * Anything else is rejected, as libpq does, so a typo never silently falls back to a default.
 */
export const CONNINFO_KEYWORDS: ReadonlySet<string> = new Set([
  'service',
  'user',
  'password',
  'passfile',
  'channel_binding',
  'connect_timeout',
  'dbname',
  'host',
  'hostaddr',
  'port',
  'client_encoding',
  'options',
  'application_name',
  'fallback_application_name',
  'keepalives',
  'keepalives_idle',
  'keepalives_interval',
  'keepalives_count',
  'tcp_user_timeout',
  'replication',
  'sslmode',
  'sslnegotiation',
  'sslcompression',
  'sslcert',
  'sslkey',
  'sslkeylogfile',
  'sslcertmode',
  'sslpassword',
  'sslrootcert',
  'sslcrl',
  'sslcrldir',
  'sslsni',
  'requirepeer',
  'require_auth',
  'ssl_min_protocol_version',
  'ssl_max_protocol_version',
  'min_protocol_version',
  'max_protocol_version',
  'gssencmode',
  'krbsrvname',
  'gsslib',
  'gssdelegation',
  'target_session_attrs',
  'load_balance_hosts',
  'oauth_issuer',
  'oauth_client_id',
  'oauth_client_secret',
  'oauth_scope',
]);

const URI_PREFIXES = ['postgresql://', 'postgres://'] as const;

/** True when `s` is a postgres:// or postgresql:// URI rather than a key=value string. */
export function isConninfoUri(s: string): boolean {
  return URI_PREFIXES.some((p) => s.startsWith(p));
}

/** One `key=value` pair as found in the source string, with offsets (used by redaction). */
export interface KeyValueToken {
  key: string;
  value: string;
  /** Offset of the first character of the raw value (the opening quote when quoted). */
  valueStart: number;
  /** Offset just past the raw value (past the closing quote when quoted). */
  valueEnd: number;
}

function isSpace(ch: string | undefined): boolean {
  return ch === ' ' || ch === '\t' || ch === '\n' || ch === '\r' || ch === '\f' || ch === '\v';
}

/**
 * Splits a key=value conninfo string into tokens following libpq's conninfo_parse():
 * whitespace around `=` is allowed, a value is either single-quoted or runs to the next
 * whitespace, and a backslash escapes the next character in both forms. Keywords are
 * not validated here.
 */
export function tokenizeKeyValue(s: string): KeyValueToken[] {
  const tokens: KeyValueToken[] = [];
  let i = 0;
  const n = s.length;
  while (i < n) {
    if (isSpace(s[i])) {
      i++;
      continue;
    }
    const keyStart = i;
    while (i < n && !isSpace(s[i]) && s[i] !== '=') i++;
    const key = s.slice(keyStart, i);
    while (i < n && isSpace(s[i])) i++;
    if (s[i] !== '=') {
      throw new ConninfoError(`missing "=" after "${key}" in connection info string`, { keyword: key });
    }
    i++;
    while (i < n && isSpace(s[i])) i++;
    const valueStart = i;
    let value = '';
    if (s[i] === "'") {
      i++;
      let closed = false;
      while (i < n) {
        const ch = s[i]!;
        if (ch === '\\') {
          i++;
          if (i < n) value += s[i++];
        } else if (ch === "'") {
          i++;
          closed = true;
          break;
        } else {
          value += ch;
          i++;
        }
      }
      if (!closed) {
        throw new ConninfoError(`unterminated quoted string in connection info string (value of "${key}")`, {
          keyword: key,
        });
      }
    } else {
      while (i < n && !isSpace(s[i])) {
        if (s[i] === '\\') {
          i++;
          if (i < n) value += s[i++];
        } else {
          value += s[i++];
        }
      }
    }
    tokens.push({ key, value, valueStart, valueEnd: i });
  }
  return tokens;
}

function checkKeyword(key: string, where: string): void {
  if (!CONNINFO_KEYWORDS.has(key)) {
    throw new ConninfoError(`invalid ${where} "${key}"`, { keyword: key });
  }
}

function parseKeyValue(s: string): ConnParams {
  const params: ConnParams = {};
  for (const { key, value } of tokenizeKeyValue(s)) {
    checkKeyword(key, 'connection option');
    params[key] = value;
  }
  return params;
}

/** Percent-decodes like libpq's conninfo_uri_decode(): strict `%XX`, no `%00`, UTF-8 result. */
function percentDecode(s: string): string {
  if (!s.includes('%')) return s;
  const bytes: number[] = [];
  for (let i = 0; i < s.length; ) {
    const ch = s[i]!;
    if (ch === '%') {
      const hex = s.slice(i + 1, i + 3);
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) {
        throw new ConninfoError(`invalid percent-encoded token: "${s.slice(i)}"`, { token: s.slice(i) });
      }
      const b = Number.parseInt(hex, 16);
      if (b === 0) throw new ConninfoError('forbidden value %00 in percent-encoded value');
      bytes.push(b);
      i += 3;
    } else {
      const cp = s.codePointAt(i)!;
      const chunk = String.fromCodePoint(cp);
      bytes.push(...Buffer.from(chunk, 'utf8'));
      i += chunk.length;
    }
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.from(bytes));
  } catch {
    throw new ConninfoError('percent-encoded value is not valid UTF-8');
  }
}

/**
 * Parses `postgres[ql]://[user[:password]@][host[:port][,host[:port]...]][/dbname][?k=v&...]`
 * following libpq's conninfo_uri_parse_options(). Several hosts become `host=a,b` and
 * `port=p1,p2` (an empty entry where a host has no port), exactly as libpq stores them.
 */
function parseUri(uri: string): ConnParams {
  const prefix = URI_PREFIXES.find((p) => uri.startsWith(p))!;
  const params: ConnParams = {};
  let rest = uri.slice(prefix.length);

  // libpq looks for the credentials designator '@' before the first '/'.
  const slash = rest.indexOf('/');
  const at = rest.indexOf('@');
  if (at !== -1 && (slash === -1 || at < slash)) {
    const userspec = rest.slice(0, at);
    rest = rest.slice(at + 1);
    const colon = userspec.indexOf(':');
    const user = colon === -1 ? userspec : userspec.slice(0, colon);
    if (user !== '') params.user = percentDecode(user);
    if (colon !== -1) {
      const password = userspec.slice(colon + 1);
      if (password !== '') params.password = percentDecode(password);
    }
  }

  const hosts: string[] = [];
  const ports: string[] = [];
  let i = 0;
  for (;;) {
    let host: string;
    if (rest[i] === '[') {
      const close = rest.indexOf(']', i);
      if (close === -1) {
        throw new ConninfoError(
          `end of string reached when looking for matching "]" in IPv6 host address in URI`,
        );
      }
      host = rest.slice(i + 1, close);
      if (host === '') throw new ConninfoError('IPv6 host address may not be empty in URI');
      i = close + 1;
      const next = rest[i];
      if (next !== undefined && next !== ':' && next !== '/' && next !== '?' && next !== ',') {
        throw new ConninfoError(`unexpected character "${next}" after IPv6 host address in URI`);
      }
    } else {
      const start = i;
      while (i < rest.length && !':/?,'.includes(rest[i]!)) i++;
      host = rest.slice(start, i);
    }
    let port = '';
    if (rest[i] === ':') {
      const start = ++i;
      while (i < rest.length && !'/?,'.includes(rest[i]!)) i++;
      port = rest.slice(start, i);
    }
    hosts.push(percentDecode(host));
    ports.push(percentDecode(port));
    if (rest[i] !== ',') break;
    i++;
  }
  if (hosts.some((h) => h !== '')) params.host = hosts.join(',');
  if (ports.some((p) => p !== '')) params.port = ports.join(',');

  rest = rest.slice(i);
  if (rest.startsWith('/')) {
    const q = rest.indexOf('?');
    const db = q === -1 ? rest.slice(1) : rest.slice(1, q);
    if (db !== '') params.dbname = percentDecode(db);
    rest = q === -1 ? '' : rest.slice(q);
  }
  if (rest.startsWith('?')) {
    for (const pair of rest.slice(1).split('&')) {
      if (pair === '') continue;
      const eq = pair.indexOf('=');
      if (eq === -1) {
        throw new ConninfoError(`missing key/value separator "=" in URI query parameter: "${pair}"`);
      }
      if (pair.indexOf('=', eq + 1) !== -1) {
        throw new ConninfoError(`extra key/value separator "=" in URI query parameter: "${pair}"`);
      }
      let key = percentDecode(pair.slice(0, eq));
      let value = percentDecode(pair.slice(eq + 1));
      // libpq maps the JDBC-style ssl=true to sslmode=require.
      if (key === 'ssl' && value === 'true') {
        key = 'sslmode';
        value = 'require';
      }
      checkKeyword(key, 'URI query parameter');
      params[key] = value;
    }
  } else if (rest !== '') {
    throw new ConninfoError(`unexpected "${rest[0]}" in URI after the host list`);
  }
  return params;
}

/**
 * Parses a libpq connection string: either `key=value ...` or a postgres:// URI.
 * Unknown keywords and malformed input throw {@link ConninfoError} naming the problem.
 */
export function parseConninfo(s: string): ConnParams {
  return isConninfoUri(s) ? parseUri(s) : parseKeyValue(s);
}

function quoteValue(value: string): string {
  if (value !== '' && !/[\s'\\]/.test(value)) return value;
  return `'${value.replaceAll('\\', '\\\\').replaceAll("'", "\\'")}'`;
}

function assertKeywords(params: ConnParams): void {
  for (const key of Object.keys(params)) checkKeyword(key, 'connection option');
}

/** Formats params as a key=value string, quoting values only where needed. Round-trips through {@link parseConninfo}. */
export function formatConninfo(params: ConnParams): string {
  assertKeywords(params);
  return Object.entries(params)
    .map(([k, v]) => `${k}=${quoteValue(v)}`)
    .join(' ');
}

// Everything outside RFC 3986 "unreserved" is encoded; encodeURIComponent leaves !'()* alone.
function encode(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function encodeHost(host: string): string {
  if (host.includes(':')) return `[${encode(host).replaceAll('%3A', ':')}]`;
  return encode(host);
}

/**
 * Formats params as a postgresql:// URI. Hosts and ports go into the authority when each
 * host has its own port (or there is one host); otherwise the port list travels as a
 * query parameter so that the result parses back to exactly the same params.
 */
export function formatUri(params: ConnParams): string {
  assertKeywords(params);
  const { user, password, host, port, dbname, ...rest } = params;
  const query: ConnParams = {};
  let auth = '';
  if (user !== undefined && user !== '') {
    auth = encode(user);
    if (password !== undefined && password !== '') auth += `:${encode(password)}`;
    auth += '@';
    if (password === '') query.password = '';
  } else {
    if (user !== undefined) query.user = user;
    if (password !== undefined) query.password = password;
  }

  const hosts = host !== undefined ? host.split(',') : [];
  const ports = port !== undefined ? port.split(',') : [];
  let authority: string;
  const hostsRoundTrip = host === undefined || (host !== '' && hosts.every((h) => h !== ''));
  if (hostsRoundTrip && ports.length === hosts.length && ports.some((p) => p !== '')) {
    authority = hosts.map((h, i) => `${encodeHost(h)}${ports[i] ? `:${encode(ports[i]!)}` : ''}`).join(',');
  } else if (hostsRoundTrip && hosts.length <= 1 && ports.length === 1 && ports[0] !== '') {
    authority = `${hosts[0] !== undefined ? encodeHost(hosts[0]) : ''}:${encode(ports[0]!)}`;
  } else {
    authority = hostsRoundTrip ? hosts.map(encodeHost).join(',') : '';
    if (!hostsRoundTrip) query.host = host!;
    if (port !== undefined) query.port = port;
  }
  let uri = `postgresql://${auth}${authority}`;
  if (dbname !== undefined && dbname !== '') uri += `/${encode(dbname)}`;
  else if (dbname === '') query.dbname = '';
  Object.assign(query, rest);
  const q = Object.entries(query)
    .map(([k, v]) => `${encode(k)}=${encode(v)}`)
    .join('&');
  return q === '' ? uri : `${uri}?${q}`;
}

/**
 * Returns `s` with `overrides` applied (an `undefined` value removes the keyword), in the
 * same form as the input (URI stays URI, key=value stays key=value).
 */
export function withConninfo(s: string, overrides: Record<string, string | undefined>): string {
  const params = parseConninfo(s);
  for (const [k, v] of Object.entries(overrides)) {
    if (v === undefined) delete params[k];
    else params[k] = v;
  }
  return isConninfoUri(s) ? formatUri(params) : formatConninfo(params);
}
