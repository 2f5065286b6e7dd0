import { execFileSync } from 'node:child_process';
import { chownSync, lstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { SandboxError } from './errors.js';

/** The OS identity servers run under. PostgreSQL refuses to run as root. */
export interface RunAs {
  uid: number;
  gid: number;
  /** Name for messages. */
  user: string;
}

/**
 * When we are root, servers run as the `postgres` user (or `user`), else as ourselves
 * (undefined: no uid switch needed).
 */
export function resolveRunAs(user = 'postgres'): RunAs | undefined {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return undefined;
  try {
    const uid = Number(execFileSync('id', ['-u', user], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', user], { encoding: 'utf8' }).trim());
    return { uid, gid, user };
  } catch {
    throw new SandboxError(
      'SANDBOX_NO_USER',
      `running as root, and PostgreSQL refuses to run as root; no '${user}' user exists to run it as. ` +
        `Create one (useradd --system ${user}) or install Debian's postgresql package, which creates it.`,
      { user },
    );
  }
}

/** chown -R, for files we write into a data directory as root. */
export function chownTree(path: string, runAs: RunAs | undefined): void {
  if (!runAs) return;
  const st = lstatSync(path);
  chownSync(path, runAs.uid, runAs.gid);
  if (st.isDirectory()) for (const e of readdirSync(path)) chownTree(join(path, e), runAs);
}
