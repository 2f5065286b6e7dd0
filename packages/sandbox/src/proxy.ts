import { createConnection, createServer, type Server, type Socket } from 'node:net';

/**
 * A loopback TCP proxy for one (party → target) direction. While blocked it behaves like a
 * black hole, not like a closed port: new connections are accepted but never answered, and
 * established ones stop moving bytes (reads are paused, so nothing is lost or delivered).
 * When unblocked, everything flows again, as after a healed network partition.
 */
export class PartyProxy {
  readonly from: string;
  readonly to: string;
  private server: Server | undefined;
  private port = 0;
  private blocked = false;
  private readonly pairs = new Set<{ client: Socket; upstream: Socket | undefined }>();

  constructor(
    from: string,
    to: string,
    private readonly targetPort: () => number,
  ) {
    this.from = from;
    this.to = to;
  }

  get listenPort(): number {
    return this.port;
  }

  get isBlocked(): boolean {
    return this.blocked;
  }

  /** Starts listening on `port` (chosen by the caller so the address is known at once). */
  listen(port: number): void {
    if (this.server) return;
    const server = createServer({ pauseOnConnect: true }, (client) => this.accept(client));
    this.server = server;
    this.port = port;
    server.on('error', (err) => {
      // The port was taken between probing and binding: nothing can reach this party now.
      process.emitWarning(`pgfleet sandbox proxy ${this.from}->${this.to} on ${port}: ${err.message}`);
    });
    server.listen(port, '127.0.0.1');
    server.unref();
  }

  private accept(client: Socket): void {
    const pair: { client: Socket; upstream: Socket | undefined } = { client, upstream: undefined };
    this.pairs.add(pair);
    client.on('error', () => this.drop(pair));
    client.on('close', () => this.drop(pair));
    if (!this.blocked) this.connectUpstream(pair);
  }

  private connectUpstream(pair: { client: Socket; upstream: Socket | undefined }): void {
    const upstream = createConnection({ host: '127.0.0.1', port: this.targetPort() });
    pair.upstream = upstream;
    upstream.on('error', () => this.drop(pair));
    upstream.on('close', () => this.drop(pair));
    pair.client.pipe(upstream);
    upstream.pipe(pair.client);
    if (this.blocked) this.freeze(pair);
    else pair.client.resume();
  }

  private freeze(pair: { client: Socket; upstream: Socket | undefined }): void {
    pair.client.pause();
    pair.upstream?.pause();
  }

  private drop(pair: { client: Socket; upstream: Socket | undefined }): void {
    if (!this.pairs.delete(pair)) return;
    pair.client.destroy();
    pair.upstream?.destroy();
  }

  block(): void {
    this.blocked = true;
    for (const pair of this.pairs) this.freeze(pair);
  }

  unblock(): void {
    this.blocked = false;
    for (const pair of this.pairs) {
      if (!pair.upstream) this.connectUpstream(pair);
      else {
        pair.client.resume();
        pair.upstream.resume();
      }
    }
  }

  /** Drops every open connection (used when the target restarts, like a real RST). */
  resetConnections(): void {
    for (const pair of [...this.pairs]) this.drop(pair);
  }

  async close(): Promise<void> {
    this.resetConnections();
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
