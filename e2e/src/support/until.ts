import { eventually } from './eventually.js';

/** A pause that never goes negative. */
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, Math.max(0, ms)));

/**
 * Polls `fn` every 50 ms until it returns something truthy (a thrown error counts as not yet)
 * and returns that; throws `timed out waiting for <what>` with the last value or error after
 * `timeoutMs`.
 */
export async function until<T>(
  what: string,
  fn: () => Promise<T | null | undefined | false>,
  timeoutMs = 30_000,
): Promise<T> {
  return (await eventually(what, fn, Boolean, { timeoutMs, intervalMs: 50 })) as T;
}
