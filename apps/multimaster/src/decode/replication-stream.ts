import { quoteIdent } from '@pgfleet/connection';
import { formatLsn, type Lsn } from '@pgfleet/wal';
import pg from 'pg';

/** µs between 1970-01-01 and 2000-01-01. */
const PG_EPOCH_UNIX_MS = 946_684_800_000n;

export interface ReplicationStreamOptions {
  clientConfig: pg.ClientConfig;
  slot: string;
  publication: string;
  /** Ask the server to drop transactions that carry an origin (PostgreSQL 16+). */
  originNone: boolean;
  /**
   * Protocol 2 with `streaming 'on'`: a transaction larger than the source's
   * logical_decoding_work_mem arrives in blocks while in progress (decode/streamed-transactions.ts
   * turns it back into a whole one) instead of being spilled to the source's disk first.
   */
  streaming: boolean;
  startLsn: Lsn;
  /**
   * One pgoutput message (the XLogData payload). The buffer is only valid during the call:
   * node-pg reuses its receive buffer, so whatever is kept must be copied.
   */
  onMessage(msg: Buffer): void;
  /** The server asked for an immediate status reply. */
  onReplyRequested(): void;
  /** The stream ended or failed; called once. */
  onEnd(err: Error | null): void;
}

interface CopyConnection {
  on(event: 'copyData', cb: (m: { chunk: Buffer }) => void): void;
  sendCopyFromChunk(chunk: Buffer): void;
  stream: { pause(): void; resume(): void };
}

/**
 * One logical replication stream on node-pg's replication connection: START_REPLICATION
 * with pgoutput (values as text; protocol 1, or 2 with large transactions streamed), each message
 * handed over synchronously as it is parsed, keepalives noted, and standby status sent
 * only when the edge says what is durable. No message becomes a promise or an event of
 * its own: a slow target pauses the socket (pause/resume) instead of queueing in memory.
 */
export class ReplicationStream {
  private client: pg.Client | null = null;
  private connection: CopyConnection | null = null;
  private ended = false;
  private paused = false;
  /** Highest server WAL end seen in a keepalive or data message (for lag). */
  serverWalEnd: Lsn | null = null;
  private lastKeepalive: Lsn | null = null;

  constructor(private readonly o: ReplicationStreamOptions) {}

  /** Connects and starts streaming; the outcome arrives through onEnd. */
  start(): void {
    this.run().then(
      () => this.end(null),
      (err: Error) => this.end(err),
    );
  }

  private async run(): Promise<void> {
    const client = new pg.Client({ ...this.o.clientConfig, replication: 'database' } as pg.ClientConfig);
    this.client = client;
    client.on('error', (err) => this.end(err));
    client.on('end', () => this.end(null));
    await client.connect();
    if (this.ended) {
      await client.end().catch(() => {});
      return;
    }
    const connection = (client as unknown as { connection: CopyConnection }).connection;
    this.connection = connection;
    connection.on('copyData', ({ chunk }) => this.onCopyData(chunk));
    if (this.paused) connection.stream.pause();
    // Text values; protocol 1 sends whole transactions at commit, protocol 2 may stream them.
    const options = this.o.streaming ? [`proto_version '2'`, `streaming 'on'`] : [`proto_version '1'`];
    options.push(`publication_names '${this.o.publication}'`);
    if (this.o.originNone) options.push(`origin 'none'`);
    await client.query(
      `START_REPLICATION SLOT ${quoteIdent(this.o.slot)} LOGICAL ${formatLsn(this.o.startLsn)} (${options.join(', ')})`,
    );
  }

  private onCopyData(chunk: Buffer): void {
    if (this.ended) return;
    const kind = chunk[0];
    if (kind === 0x77 /* w: XLogData */) {
      const walEnd = chunk.readBigUInt64BE(9) as Lsn;
      if (this.serverWalEnd === null || walEnd > this.serverWalEnd) this.serverWalEnd = walEnd;
      this.o.onMessage(chunk.subarray(25));
    } else if (kind === 0x6b /* k: primary keepalive */) {
      const walEnd = chunk.readBigUInt64BE(1) as Lsn;
      if (this.serverWalEnd === null || walEnd > this.serverWalEnd) this.serverWalEnd = walEnd;
      this.lastKeepalive = walEnd;
      if (chunk[17] === 1) this.o.onReplyRequested();
    }
  }

  /**
   * WAL end of the latest keepalive. Every message sent before it has been handed over
   * (they are handed over as they arrive), so once the consumer holds nothing in flight,
   * nothing before it is pending.
   */
  safeKeepalive(): Lsn | null {
    return this.lastKeepalive;
  }

  pause(): void {
    if (this.paused) return;
    this.paused = true;
    this.connection?.stream.pause();
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.connection?.stream.resume();
  }

  /**
   * Standby status update reporting `lsn` as written, flushed and applied: the end of the
   * last durable commit, as PostgreSQL's own apply worker reports it.
   */
  sendStatus(lsn: Lsn, requestReply = false): boolean {
    const c = this.connection;
    if (this.ended || !c || lsn === 0n) return false;
    const b = Buffer.allocUnsafe(34);
    b.write('r', 0, 'latin1');
    b.writeBigUInt64BE(lsn, 1);
    b.writeBigUInt64BE(lsn, 9);
    b.writeBigUInt64BE(lsn, 17);
    b.writeBigInt64BE((BigInt(Date.now()) - PG_EPOCH_UNIX_MS) * 1000n, 25);
    b.writeUInt8(requestReply ? 1 : 0, 33);
    try {
      c.sendCopyFromChunk(b);
      return true;
    } catch (err) {
      this.end(err as Error);
      return false;
    }
  }

  private end(err: Error | null): void {
    if (this.ended) return;
    this.ended = true;
    this.o.onEnd(err);
  }

  async stop(): Promise<void> {
    this.ended = true;
    const c = this.client;
    this.client = null;
    this.connection = null;
    await c?.end().catch(() => {});
  }
}
