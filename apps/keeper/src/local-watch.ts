import { connect } from '@pgfleet/connection';
import type { Logger } from 'pino';
import { type Client, KEEPER_APPLICATION_NAME } from './session.js';

/**
 * One idle session to the local primary, kept open only to notice its death at once: when the
 * postmaster dies, every backend exits on its own (they wait for client input together with
 * WL_POSTMASTER_DEATH, see src/backend/libpq/be-secure.c), so this socket closes within
 * milliseconds and the keeper runs its next iteration immediately instead of at the next tick.
 * That is what makes the fast path fast. Best effort: any failure just means "reconnect later".
 */
export class LocalWatch {
  private client: Client | null = null;
  private connecting = false;

  constructor(
    private readonly conninfo: string,
    private readonly timeoutMs: number,
    private readonly onLost: () => void,
    private readonly logger: Logger,
  ) {}

  /** Opens the watch session if there is none (call while the local server is a primary). */
  async ensure(): Promise<void> {
    if (this.client || this.connecting) return;
    this.connecting = true;
    try {
      const client = await connect(this.conninfo, {
        connectTimeoutMs: this.timeoutMs,
        totalTimeoutMs: this.timeoutMs,
        applicationName: KEEPER_APPLICATION_NAME,
      });
      this.client = client;
      const lost = () => {
        if (this.client !== client) return;
        this.client = null;
        this.logger.debug('local watch session lost');
        this.onLost();
      };
      client.on('error', lost);
      client.on('end', lost);
    } catch {
      // the next iteration tries again
    } finally {
      this.connecting = false;
    }
  }

  /** Closes the watch session without reporting it as lost. */
  close(): void {
    const client = this.client;
    this.client = null;
    if (!client) return;
    client.removeAllListeners('end');
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
