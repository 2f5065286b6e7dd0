/**
 * Cleanup of everything a sandbox-like harness started (PostgreSQL servers, etcd members) when
 * this process ends: on a normal exit and on Ctrl-C/SIGTERM/SIGHUP. The watchdog started by
 * each ProcessRegistry covers the deaths no handler sees (SIGKILL, OOM).
 */
export interface Destroyable {
  /** Kills every process the harness owns and removes its temp root; safe to call twice. */
  destroySync(): void;
}

const live = new Set<Destroyable>();
let hooksInstalled = false;

function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', () => {
    for (const h of live) h.destroySync();
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const handler = () => {
      // When the program has its own handler, let it shut down gracefully; 'exit' cleans up.
      if (process.listenerCount(sig) > 1) return;
      for (const h of live) h.destroySync();
      process.removeListener(sig, handler);
      process.kill(process.pid, sig);
    };
    process.on(sig, handler);
  }
}

/** Destroys `h` when this process exits or is interrupted, unless untracked first. */
export function trackForCleanup(h: Destroyable): void {
  installExitHooks();
  live.add(h);
}

export function untrackForCleanup(h: Destroyable): void {
  live.delete(h);
}
