import { readFile, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { ConnParams } from './conninfo.js';

/**
 * libpq's password file (~/.pgpass), read by us instead of by node-pg: node-pg 8.x still
 * reads it when no password is given, but prints "pgpass support is deprecated" each time,
 * and it ignores the `passfile` conninfo keyword. Same rules as libpq's passwordFromFile
 * (src/interfaces/libpq/fe-connect.c) and https://www.postgresql.org/docs/current/libpq-pgpass.html.
 */

/** What a password file line is matched against (libpq matches host, port, dbname, user). */
export interface PgpassLookup {
  host: string;
  port: string;
  dbname: string;
  user: string;
}

/** Unix socket directories libpq is commonly built with (DEFAULT_PGSOCKET_DIR): they match `localhost`. */
const DEFAULT_SOCKET_DIRS = new Set(['/tmp', '/var/run/postgresql', '/run/postgresql']);

/**
 * Matches one field at the start of `rest`: `*` matches anything, otherwise the field
 * (with `\:` and `\\` escapes) must equal `token`. Returns what follows the field's `:`.
 */
function matchField(rest: string, token: string): string | null {
  if (rest.startsWith('*:')) return rest.slice(2);
  let i = 0;
  let j = 0;
  while (i < rest.length && rest[i] !== ':') {
    if (rest[i] === '\\' && i + 1 < rest.length) i++;
    if (j >= token.length || rest[i] !== token[j]) return null;
    i++;
    j++;
  }
  if (i >= rest.length || j !== token.length) return null;
  return rest.slice(i + 1);
}

/** The password field: up to the first unescaped `:` (libpq ignores anything after it), de-escaped. */
function passwordField(rest: string): string {
  let out = '';
  for (let i = 0; i < rest.length && rest[i] !== ':'; i++) {
    if (rest[i] === '\\' && i + 1 < rest.length) i++;
    out += rest[i];
  }
  return out;
}

/** libpq's host for the lookup: an empty host or the default socket directory counts as `localhost`. */
export function pgpassHost(host: string | undefined): string {
  if (host === undefined || host === '') return 'localhost';
  if (host.startsWith('/') && DEFAULT_SOCKET_DIRS.has(host.replace(/\/+$/, ''))) return 'localhost';
  return host;
}

/**
 * The password of the first line of a password file's contents that matches `lookup`, or
 * undefined. Lines starting with `#` are comments; `\r\n` endings are accepted.
 */
export function findPgpassPassword(contents: string, lookup: PgpassLookup): string | undefined {
  if (lookup.dbname === '' || lookup.user === '') return undefined;
  for (const raw of contents.split('\n')) {
    const line = raw.replace(/\r$/, '');
    if (line === '' || line.startsWith('#')) continue;
    let rest: string | null = line;
    for (const token of [lookup.host, lookup.port, lookup.dbname, lookup.user]) {
      rest = matchField(rest, token);
      if (rest === null) break;
    }
    if (rest !== null) return passwordField(rest);
  }
  return undefined;
}

export interface PgpassEnv {
  PGPASSFILE?: string | undefined;
  PGPASSWORD?: string | undefined;
  HOME?: string | undefined;
  APPDATA?: string | undefined;
}

/** Which file libpq would read: the `passfile` keyword, else PGPASSFILE, else ~/.pgpass. */
export function pgpassFilePath(
  params: ConnParams,
  env: PgpassEnv,
  platform: NodeJS.Platform = process.platform,
): string {
  if (params.passfile) return params.passfile;
  if (env.PGPASSFILE) return env.PGPASSFILE;
  if (platform === 'win32') return join(env.APPDATA ?? '.', 'postgresql', 'pgpass.conf');
  return join(env.HOME || homedir(), '.pgpass');
}

/** File access, injectable for tests. */
export interface PgpassIo {
  /** null when the file does not exist or cannot be examined. */
  stat(path: string): Promise<{ isFile: boolean; mode: number } | null>;
  readFile(path: string): Promise<string>;
}

const fsIo: PgpassIo = {
  async stat(path) {
    try {
      const s = await stat(path);
      return { isFile: s.isFile(), mode: s.mode };
    } catch {
      return null;
    }
  },
  readFile: (path) => readFile(path, 'utf8'),
};

export interface PgpassOptions {
  env?: PgpassEnv;
  io?: PgpassIo;
  platform?: NodeJS.Platform;
  /** libpq prints these to stderr (file not plain, group/world access); default: process.emitWarning. */
  onWarning?: (message: string) => void;
}

/**
 * The password libpq would use when the conninfo gives none: PGPASSWORD, else the password
 * file's first matching line. A file that is not a plain file, or that group or others may
 * access, is ignored with a warning, as libpq does. Never throws for a missing file.
 */
export async function passwordFromEnvironment(
  params: ConnParams,
  lookup: PgpassLookup,
  opts: PgpassOptions = {},
): Promise<string | undefined> {
  const env = opts.env ?? process.env;
  if (env.PGPASSWORD !== undefined && env.PGPASSWORD !== '') return env.PGPASSWORD;
  const io = opts.io ?? fsIo;
  const platform = opts.platform ?? process.platform;
  const warn = opts.onWarning ?? ((m: string) => process.emitWarning(m, { code: 'PGFLEET_PGPASS' }));
  const file = pgpassFilePath(params, env, platform);
  const st = await io.stat(file);
  if (!st) return undefined;
  if (platform !== 'win32') {
    if (!st.isFile) {
      warn(`password file "${file}" is not a plain file`);
      return undefined;
    }
    if ((st.mode & 0o077) !== 0) {
      warn(`password file "${file}" has group or world access; permissions should be u=rw (0600) or less`);
      return undefined;
    }
  }
  let contents: string;
  try {
    contents = await io.readFile(file);
  } catch {
    return undefined;
  }
  return findPgpassPassword(contents, { ...lookup, host: pgpassHost(lookup.host) });
}
