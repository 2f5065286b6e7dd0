import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Polls `probe` until it returns a value `accept` likes, or throws with the last value seen.
 * For waiting on replication and failover, where a fixed sleep is either flaky or slow.
 */
export async function eventually<T>(
  what: string,
  probe: () => Promise<T>,
  accept: (value: T) => boolean,
  opts: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const deadline = Date.now() + (opts.timeoutMs ?? 15_000);
  let last: T | undefined;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      last = await probe();
      if (accept(last)) return last;
    } catch (err) {
      lastError = err;
    }
    await sleep(opts.intervalMs ?? 50);
  }
  const seen = lastError
    ? `last error: ${(lastError as Error).message}`
    : `last value: ${JSON.stringify(last)}`;
  throw new Error(`timed out waiting for ${what} (${seen})`);
}
