import { connect, NodeUnreachableError, toPgfleetError } from '@pgfleet/connection';

export type Client = Awaited<ReturnType<typeof connect>>;

/** application_name of every keeper session; fencing spares these. */
export const KEEPER_APPLICATION_NAME = 'pgfleet-keeper';

function destroy(client: Client): void {
  // A frozen or black-holed server never answers the terminate message: cut the socket.
  (
    client as unknown as { connection?: { stream?: { destroy?: () => void } } }
  ).connection?.stream?.destroy?.();
}

/**
 * Opens a fresh session, runs `fn`, closes it: all of it under one hard deadline, so a
 * SIGSTOPped or partitioned server costs `timeoutMs`, never a TCP timeout. Throws a
 * PgfleetError (NODE_UNREACHABLE on timeout); passwords never appear in messages.
 */
export async function withSession<T>(
  conninfo: string,
  opts: { timeoutMs: number; node: string; action: string; signal?: AbortSignal },
  fn: (client: Client) => Promise<T>,
): Promise<T> {
  let client: Client | undefined;
  let timer: NodeJS.Timeout | undefined;
  let expired = false;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      expired = true;
      if (client) destroy(client);
      reject(
        new NodeUnreachableError(`${opts.action} on ${opts.node} got no answer within ${opts.timeoutMs} ms`, {
          node: opts.node,
          action: opts.action,
          reason: 'timeout',
          timeoutMs: opts.timeoutMs,
        }),
      );
    }, opts.timeoutMs);
  });
  const work = (async () => {
    const c = await connect(conninfo, {
      connectTimeoutMs: opts.timeoutMs,
      totalTimeoutMs: opts.timeoutMs,
      statementTimeoutMs: opts.timeoutMs,
      applicationName: KEEPER_APPLICATION_NAME,
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    if (expired) {
      destroy(c);
      throw new Error('expired');
    }
    client = c;
    return fn(c);
  })();
  work.catch(() => {});
  try {
    return await Promise.race([work, deadline]);
  } catch (err) {
    throw toPgfleetError(err, { node: opts.node, action: opts.action });
  } finally {
    clearTimeout(timer);
    if (client) {
      const c = client;
      if (expired) destroy(c);
      else {
        const t = setTimeout(() => destroy(c), 500);
        c.end()
          .catch(() => {})
          .finally(() => clearTimeout(t));
      }
    }
  }
}
