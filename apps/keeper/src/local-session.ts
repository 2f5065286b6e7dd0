import { connect, NodeUnreachableError, toPgfleetError } from '@pgfleet/connection';
import type { Logger } from 'pino';
import { type Client, KEEPER_APPLICATION_NAME } from './session.js';

/** An established session failed while in use: the server may have restarted or died. */
export class LocalSessionBroken extends Error {}

/**
 * The keeper's one long-lived session to its local server, for the every-iteration reads
 * (role, replay, sync names, walsenders). Reusing it spares a connection and a SCRAM handshake
 * (PBKDF2, the most expensive thing an idle keeper did) every iteration.
 *
 * It also notices the server's death at once: when the postmaster dies every backend exits on
 * its own (they wait for client input together with WL_POSTMASTER_DEATH, see
 * src/backend/libpq/be-secure.c), so the socket closes within milliseconds and `onLost` runs the
 * next iteration immediately instead of at the next tick. That is what makes the fast path fast.
 *
 * Every use runs under one hard deadline; a frozen server costs `timeoutMs`, then the socket is
 * cut. Probes of the *peer* keep fresh connections on purpose: they prove the peer accepts new
 * sessions, which a long-lived session cannot.
 */
export class LocalSession {
  private client: Client | null = null;

  constructor(
    private readonly conninfo: string,
    private readonly node: string,
    private readonly timeoutMs: number,
    private readonly onLost: () => void,
    private readonly logger: Logger,
  ) {}

  /**
   * Runs `fn` on the session, opening it first if needed. Errors while opening are thrown as
   * they are (they classify the server: refused, auth failed...); errors on an established
   * session drop it and are thrown as LocalSessionBroken with the original as cause, except a
   * deadline overrun, which is a NodeUnreachableError (timeout) either way.
   */
  async run<T>(
    action: string,
    fn: (client: Client) => Promise<T>,
    signal?: AbortSignal,
    timeoutMs = this.timeoutMs,
  ): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    let established = this.client !== null;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.drop();
        reject(
          new NodeUnreachableError(`${action} on ${this.node} got no answer within ${timeoutMs} ms`, {
            node: this.node,
            action,
            reason: 'timeout',
            timeoutMs,
          }),
        );
      }, timeoutMs);
    });
    const work = (async () => {
      if (!this.client) {
        this.client = await this.open(signal);
        established = true;
      }
      return fn(this.client);
    })();
    work.catch(() => {});
    try {
      return await Promise.race([work, deadline]);
    } catch (err) {
      if (err instanceof NodeUnreachableError && (err.details as { reason?: string })?.reason === 'timeout')
        throw err;
      if (!established) throw toPgfleetError(err, { node: this.node, action });
      this.drop();
      throw new LocalSessionBroken(`${action} on ${this.node}: session lost`, { cause: err });
    } finally {
      clearTimeout(timer);
    }
  }

  private async open(signal?: AbortSignal): Promise<Client> {
    const client = await connect(this.conninfo, {
      connectTimeoutMs: this.timeoutMs,
      totalTimeoutMs: this.timeoutMs,
      applicationName: KEEPER_APPLICATION_NAME,
      ...(signal ? { signal } : {}),
    });
    const lost = () => {
      if (this.client !== client) return;
      this.client = null;
      this.logger.debug('local session lost');
      this.onLost();
    };
    client.on('error', lost);
    client.on('end', lost);
    return client;
  }

  /** Closes the session (on shutdown) without reporting it as lost. */
  close(): void {
    this.drop();
  }

  private drop(): void {
    const client = this.client;
    this.client = null;
    if (!client) return;
    client.removeAllListeners('end');
    client.removeAllListeners('error');
    client.on('error', () => {});
    const socket = (client as unknown as { connection?: { stream?: { destroy?: () => void } } }).connection
      ?.stream;
    const timer = setTimeout(() => socket?.destroy?.(), 500);
    client
      .end()
      .catch(() => {})
      .finally(() => clearTimeout(timer));
  }
}
