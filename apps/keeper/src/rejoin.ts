import { execFile, execFileSync } from 'node:child_process';
import {
  accessSync,
  chownSync,
  constants,
  existsSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { PgfleetError, parseConninfo, redactConninfo, withConninfo } from '@pgfleet/connection';
import { detectRole, type RoleInfo } from '@pgfleet/roles';
import { createPhysicalSlot } from '@pgfleet/wal';
import type { KeeperConfig } from './config.js';
import { decideRejoin, type NodeFacts, type RejoinPlan } from './rejoin-decision.js';
import { withSession } from './session.js';

/**
 * `pgfleet-keeper rejoin`: turns a failed or fenced old primary into a standby of the new one.
 * Stops the local server if it still runs, rewinds its data directory with pg_rewind from the
 * peer, keeps this node's own configuration files (pg_rewind copies the source's), writes
 * standby.signal and primary_conninfo (application_name = node.name), and lifts the fence. The
 * operator (or the service manager) then starts PostgreSQL and the keeper follows in standby
 * mode. pg_rewind and pg_ctl refuse to run as root, so as root they run as the data
 * directory's owner.
 */

export interface RejoinOptions {
  /** Data directory of the local server; default: the running server's data_directory. */
  pgdata?: string;
  /** Where pg_rewind and pg_ctl live; default: found from postmaster.opts, PATH, distro dirs. */
  bindir?: string;
  force?: boolean;
  /** What the new standby streams from; default: the source's conninfo. */
  primaryConninfo?: string;
  /** The primary to follow and rewind from; default: peer (a pair). On etcd: the leader. */
  source?: { name: string; conninfo: string };
  /**
   * Physical replication slot on the peer for the new standby (created if missing). Default:
   * none (primary_slot_name = ''), so a node that never comes back cannot fill the peer's disk.
   */
  slot?: string;
  /** PATH to search (the CLI passes its environment's). */
  path?: string;
  print?: (line: string) => void;
}

export interface RejoinResult {
  plan: RejoinPlan;
  pgdata: string;
}

/** Config files that describe this node, not the cluster's history: kept across pg_rewind. */
const OWN_FILES = ['postgresql.conf', 'postgresql.auto.conf', 'pg_hba.conf', 'pg_ident.conf'];
/** Settings rejoin rewrites in postgresql.auto.conf (the fence goes, the stream source changes). */
const REWRITTEN = ['primary_conninfo', 'primary_slot_name', 'default_transaction_read_only'];

export class RejoinError extends PgfleetError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super('REJOIN_FAILED', message, details);
  }
}

function facts(info: RoleInfo): NodeFacts {
  return {
    role: info.role,
    fenced: info.fenced ?? false,
    timeline: info.timeline ?? null,
    reason: redactConninfo(info.reason),
  };
}

export async function rejoin(c: KeeperConfig, opts: RejoinOptions = {}): Promise<RejoinResult> {
  const print = opts.print ?? (() => {});
  const source = opts.source ?? c.peer;
  const timeoutMs = Math.max(c.connectTimeoutMs, 2000);
  const [local, remote] = await Promise.all([
    detectRole(c.node.conninfo, { timeoutMs }),
    detectRole(source.conninfo, { timeoutMs }),
  ]);
  let pgdata = opts.pgdata;
  if (!pgdata) {
    if (local.role === 'down')
      throw new RejoinError(
        `node ${c.node.name} is down (${redactConninfo(local.reason)}): give its data directory with --pgdata`,
        { node: c.node.name },
      );
    pgdata = await withSession(
      c.node.conninfo,
      { timeoutMs, node: c.node.name, action: 'read data_directory' },
      async (q) => String((await q.query('SHOW data_directory')).rows[0]?.data_directory ?? ''),
    );
  }
  if (!existsSync(join(pgdata, 'PG_VERSION')))
    throw new RejoinError(`${pgdata} is not a PostgreSQL data directory (no PG_VERSION)`, { pgdata });

  const rewind = findPgRewind(pgdata, opts);
  const plan = decideRejoin({
    node: c.node.name,
    peer: source.name,
    local: facts(local),
    remote: facts(remote),
    rewind,
    force: opts.force ?? false,
  });
  if (plan.kind !== 'rejoin') return { plan, pgdata };
  if (!rewind.found) throw new Error('unreachable: decideRejoin rejoins only with pg_rewind');
  print(plan.reason);
  const bindir = dirname(rewind.path);
  const owner = statSync(pgdata);

  if (plan.stopLocal) {
    print(`stopping ${c.node.name} (pg_ctl stop -m fast)`);
    await runAsOwner(join(bindir, 'pg_ctl'), ['stop', '-D', pgdata, '-m', 'fast', '-w', '-t', '120'], owner);
  }

  const kept = OWN_FILES.filter((f) => existsSync(join(pgdata, f))).map((f) => ({
    name: f,
    text: readFileSync(join(pgdata, f)),
  }));
  const backup = mkdtempSync(join(tmpdir(), 'pgfleet-rejoin-'));
  for (const f of kept) writeFileSync(join(backup, f.name), f.text, { mode: 0o600 });

  // The password goes through the environment, never the command line (ps shows that).
  const password = parseConninfo(source.conninfo).password;
  const sourceConninfo = withConninfo(source.conninfo, { password: undefined });
  print(`pg_rewind from ${source.name} into ${pgdata}`);
  try {
    const out = await runAsOwner(
      rewind.path,
      [`--target-pgdata=${pgdata}`, `--source-server=${sourceConninfo}`],
      owner,
      password ? { PGPASSWORD: password } : {},
    );
    for (const line of out.split('\n').filter(Boolean)) print(`  ${redactConninfo(line)}`);
  } catch (err) {
    restore(pgdata, kept, owner);
    throw new RejoinError(
      `${(err as Error).message}. The data directory may be unusable: rebuild the standby with pg_basebackup ` +
        `(this node's config files are back in place; copies in ${backup})`,
      { pgdata, backup },
    );
  }
  restore(pgdata, kept, owner);
  if (opts.slot) {
    const slot = opts.slot;
    await withSession(source.conninfo, { timeoutMs, node: source.name, action: 'create slot' }, (q) =>
      createPhysicalSlot(q, slot, { reserve: true }),
    );
    print(`physical replication slot ${slot} on ${source.name}`);
  }
  const conninfo = withConninfo(opts.primaryConninfo ?? source.conninfo, { application_name: c.node.name });
  configureStandby(pgdata, conninfo, opts.slot ?? '', owner);
  rmSync(backup, { recursive: true, force: true });
  print(
    `${c.node.name} is now a standby of ${source.name}: start PostgreSQL (e.g. systemctl start postgresql); ` +
      'its keeper follows in standby mode',
  );
  return { plan, pgdata };
}

function restore(pgdata: string, kept: Array<{ name: string; text: Buffer }>, owner: Owner): void {
  for (const f of kept) {
    writeFileSync(join(pgdata, f.name), f.text, { mode: 0o600 });
    chownTo(join(pgdata, f.name), owner);
  }
}

/** standby.signal + primary_conninfo and primary_slot_name in postgresql.auto.conf, fence removed. */
export function configureStandby(pgdata: string, primaryConninfo: string, slot: string, owner: Owner): void {
  const signal = join(pgdata, 'standby.signal');
  writeFileSync(signal, '', { mode: 0o600 });
  chownTo(signal, owner);
  const auto = join(pgdata, 'postgresql.auto.conf');
  const before = existsSync(auto) ? readFileSync(auto, 'utf8') : '';
  writeFileSync(auto, rewriteAutoConf(before, primaryConninfo, slot), { mode: 0o600 });
  chownTo(auto, owner);
}

/**
 * Pure: drops the settings rejoin owns and appends primary_conninfo and primary_slot_name
 * (postgresql.auto.conf wins over postgresql.conf, which may still name the old primary's
 * slot: an explicit '' overrides it).
 */
export function rewriteAutoConf(text: string, primaryConninfo: string, slot = ''): string {
  const owned = new RegExp(`^\\s*(${REWRITTEN.join('|')})\\s*=`, 'i');
  const lines = text.split('\n').filter((l) => !owned.test(l));
  while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  // postgresql.conf strings: a quote is written twice, a backslash escapes (guc-file.l).
  const quote = (v: string) => `'${v.replaceAll('\\', '\\\\').replaceAll("'", "''")}'`;
  lines.push(
    '# written by pgfleet-keeper rejoin',
    `primary_conninfo = ${quote(primaryConninfo)}`,
    `primary_slot_name = ${quote(slot)}`,
  );
  return `${lines.join('\n')}\n`;
}

type Owner = { uid: number; gid: number };

function chownTo(file: string, owner: Owner): void {
  if (process.getuid?.() === 0) chownSync(file, owner.uid, owner.gid);
}

/** Runs a PostgreSQL tool as the data directory's owner when we are root (they refuse root). */
function runAsOwner(cmd: string, args: string[], owner: Owner, env: Record<string, string> = {}) {
  const asOwner = process.getuid?.() === 0 && owner.uid !== 0;
  return new Promise<string>((resolve, reject) => {
    execFile(
      cmd,
      args,
      {
        env: { ...process.env, ...env, LC_ALL: 'C' },
        cwd: '/',
        maxBuffer: 16 * 1024 * 1024,
        ...(asOwner ? { uid: owner.uid, gid: owner.gid } : {}),
      },
      (err, stdout, stderr) => {
        if (!err) return resolve(`${stdout}${stderr}`);
        const tail = redactConninfo(
          `${stderr || stdout || err.message}`.trim().split('\n').slice(-5).join(' | '),
        );
        reject(new RejoinError(`${cmd.split('/').pop()} failed: ${tail}`, { cmd }));
      },
    );
  });
}

/**
 * pg_rewind of the data directory's major version: --bindir only when given; otherwise next to
 * the postgres binary that last ran this data directory (postmaster.opts), in PATH, and in the
 * usual distribution directories.
 */
export function findPgRewind(
  pgdata: string,
  opts: { bindir?: string; path?: string },
): { found: true; path: string } | { found: false; reason: string } {
  const major = readFileSync(join(pgdata, 'PG_VERSION'), 'utf8').trim();
  const dirs: string[] = [];
  if (opts.bindir) dirs.push(opts.bindir);
  else {
    const opt = join(pgdata, 'postmaster.opts');
    if (existsSync(opt)) {
      const bin = /^(.*?)(?: "|$)/.exec(readFileSync(opt, 'utf8').split('\n')[0] ?? '')?.[1];
      if (bin) dirs.push(dirname(bin));
    }
    for (const d of (opts.path ?? '').split(delimiter).filter(Boolean)) {
      dirs.push(d);
      // /usr/local/bin/postgres -> /usr/lib/postgresql/15/bin/postgres: look beside the target too
      const pg = join(d, 'postgres');
      if (existsSync(pg)) dirs.push(dirname(realpathSync(pg)));
    }
    dirs.push(`/usr/lib/postgresql/${major}/bin`, `/usr/pgsql-${major}/bin`, `/usr/local/pgsql/bin`);
  }
  const mismatched: string[] = [];
  for (const dir of [...new Set(dirs)]) {
    const candidate = join(dir, 'pg_rewind');
    try {
      accessSync(candidate, constants.X_OK);
    } catch {
      continue;
    }
    const version = /\(PostgreSQL\)\s+(\d+)/.exec(versionOf(candidate))?.[1];
    if (version === major) return { found: true, path: candidate };
    mismatched.push(`${candidate} is PostgreSQL ${version ?? '?'}`);
  }
  return {
    found: false,
    reason:
      `pg_rewind not found: rebuild the standby with pg_basebackup (no PostgreSQL ${major} pg_rewind ` +
      `in ${[...new Set(dirs)].join(', ')}${mismatched.length ? `; ${mismatched.join(', ')}` : ''}; ` +
      'or give its directory with --bindir)',
  };
}

function versionOf(bin: string): string {
  try {
    return execFileSync(bin, ['--version'], { encoding: 'utf8', timeout: 10_000 });
  } catch {
    return '';
  }
}
