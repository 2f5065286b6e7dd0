import { eventually } from '@pgfleet/sandbox';

type Poll<T> = () => Promise<T | undefined | false> | T | undefined | false;

/**
 * An `until(what, fn, timeoutMs?)` that calls `fn` every `intervalMs` until it returns
 * something other than `undefined` or `false` (a throw counts as "not yet"), and returns that.
 */
export function pollEvery(intervalMs: number) {
  return async <T>(what: string, fn: Poll<T>, timeoutMs = 20_000): Promise<T> =>
    (await eventually(
      what,
      async () => fn(),
      (v) => v !== undefined && v !== false,
      {
        timeoutMs,
        intervalMs,
      },
    )) as T;
}

/** Polls every 50 ms, for up to 20 s unless told otherwise. */
export const until = pollEvery(50);
