import type pg from 'pg';

function destroySocket(client: pg.Client): void {
  // Read the stream at the moment of need: node-pg swaps in a TLS socket after SSLRequest.
  client.connection?.stream?.destroy();
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('This operation was aborted', 'AbortError');
}

/**
 * Settles with `work`, or rejects with `onTimeout()` after `timeoutMs` / with the
 * signal's reason on abort. Either way the client's socket is destroyed first, so a peer
 * that never answers (SIGSTOPped, SYN dropped, black-holed by a proxy) cannot keep us
 * waiting for a TCP timeout; `work`'s own late rejection is swallowed.
 */
export function raceHard<T>(
  work: Promise<T>,
  client: pg.Client,
  opts: { timeoutMs: number | undefined; signal?: AbortSignal | undefined; onTimeout: () => Error },
): Promise<T> {
  const { timeoutMs, signal, onTimeout } = opts;
  if (signal?.aborted) {
    destroySocket(client);
    work.catch(() => {});
    return Promise.reject(abortReason(signal));
  }
  if (timeoutMs === undefined && !signal) return work;
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      fn();
    };
    const onAbort = () =>
      finish(() => {
        destroySocket(client);
        reject(abortReason(signal!));
      });
    const timer =
      timeoutMs === undefined
        ? undefined
        : setTimeout(
            () =>
              finish(() => {
                destroySocket(client);
                reject(onTimeout());
              }),
            Math.max(0, timeoutMs),
          );
    signal?.addEventListener('abort', onAbort, { once: true });
    work.then(
      (v) => finish(() => resolve(v)),
      (e) => finish(() => reject(e)),
    );
  });
}

/**
 * Ends a client politely, but never waits more than `graceMs`: node-pg's end() waits for
 * the server to close the socket, which a frozen server never does.
 */
export async function closeClient(client: pg.Client, graceMs = 1000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const grace = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      destroySocket(client);
      resolve();
    }, graceMs);
  });
  try {
    await Promise.race([client.end().catch(() => {}), grace]);
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(abortReason(signal));
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortReason(signal!));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
