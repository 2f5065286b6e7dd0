/**
 * Resolves after `ms`, or as soon as `signal` aborts, and never rejects: for loops that wait
 * between rounds and check the signal themselves right after (retry and poll loops).
 */
export function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
