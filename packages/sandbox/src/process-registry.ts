import { spawn } from 'node:child_process';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { childPids } from './proc.js';

/**
 * The process groups and the temp root one sandbox owns. It keeps `<root>/pids` current for
 * the watchdog, a detached process that cleans up if this process dies without running its
 * exit handlers (SIGKILL, OOM): no orphan postmaster, no temp directory left behind.
 */
export class ProcessRegistry {
  private readonly pgids = new Set<number>();
  readonly root: string;

  constructor(root: string) {
    this.root = root;
  }

  add(pgid: number): void {
    this.pgids.add(pgid);
    this.persist();
  }

  remove(pgid: number): void {
    this.pgids.delete(pgid);
    this.persist();
  }

  get groups(): number[] {
    return [...this.pgids];
  }

  private persist(): void {
    if (existsSync(this.root)) writeFileSync(join(this.root, 'pids'), [...this.pgids].join('\n'));
  }

  /** Synchronous on purpose: it also runs from process.on('exit'). */
  killAllSync(): void {
    for (const pgid of this.pgids) {
      // Children first: a paused server's children are stopped, each in its own group.
      for (const child of childPids(pgid))
        for (const sig of ['SIGCONT', 'SIGKILL'] as const) {
          try {
            process.kill(child, sig);
          } catch {
            // already gone
          }
        }
      for (const sig of ['SIGCONT', 'SIGKILL'] as const) {
        try {
          process.kill(-pgid, sig);
        } catch {
          // already gone
        }
      }
    }
    this.pgids.clear();
  }

  removeRootSync(): void {
    rmSync(this.root, { recursive: true, force: true });
  }

  /** Starts the watchdog for this registry; it exits by itself once the root is removed. */
  startWatchdog(): void {
    const script = join(dirname(fileURLToPath(import.meta.url)), '..', 'watchdog.mjs');
    const child = spawn(process.execPath, [script, String(process.pid), this.root], {
      detached: true,
      stdio: 'ignore',
    });
    child.unref();
  }
}
