import { quoteIdent } from '@pgfleet/connection';
import { formatLsn, type Lsn } from '@pgfleet/wal';
import type pg from 'pg';
import type { ClientConfig } from 'pg';
import { LogicalReplicationService } from 'pg-logical-replication';
import type { PgoutputMessage } from './messages.js';
import { parsePgoutput } from './pgoutput-parser.js';

export interface DecodeFailure {
  tag: 'decode_error';
  error: Error;
}

/**
 * pg-logical-replication output plugin that keeps every value as the server's text.
 * It also counts messages as they arrive (parse runs when the bytes are read, the data
 * handler later), which tells the edge whether anything is still queued.
 */
class TextPgoutputPlugin {
  received = 0;
  constructor(readonly options: { publication: string; originNone: boolean }) {}
  get name(): string {
    return 'pgoutput';
  }
  parse(buffer: Buffer): PgoutputMessage | DecodeFailure {
    this.received++;
    // Thrown here, an error would escape from the socket's data event and kill the process.
    try {
      return parsePgoutput(buffer);
    } catch (error) {
      return { tag: 'decode_error', error: error as Error };
    }
  }
  start(client: pg.Client, slotName: string, lastLsn: string): Promise<unknown> {
    // proto_version 1: whole transactions at commit (no in-progress streaming), text values.
    const options = [`proto_version '1'`, `publication_names '${this.options.publication}'`];
    if (this.options.originNone) options.push(`origin 'none'`);
    return client.query(
      `START_REPLICATION SLOT ${quoteIdent(slotName)} LOGICAL ${lastLsn} (${options.join(', ')})`,
    );
  }
}

export interface EdgeStreamOptions {
  clientConfig: ClientConfig;
  slot: string;
  publication: string;
  /** Ask the server to drop transactions that carry an origin (PostgreSQL 16+). */
  originNone: boolean;
  startLsn: Lsn;
  /** Awaited before the next message is handed over (flow control). Must not throw. */
  onMessage(msg: PgoutputMessage | DecodeFailure): Promise<void>;
  /** The stream ended or failed; called once. */
  onEnd(err: Error | null): void;
  /** The server asked for an immediate status reply. */
  onReplyRequested(): void;
}

/**
 * One logical replication stream, on pg-logical-replication with the settings its defaults
 * get wrong for us: no automatic acknowledgement and no library standby-status timer
 * (the edge decides what is durable and sends status itself), flow control on so a slow
 * target pauses the socket instead of buffering the whole backlog in memory, and an error
 * listener so a dropped connection is an event, not a crash.
 */
export class EdgeStream {
  private readonly service: LogicalReplicationService;
  private readonly plugin: TextPgoutputPlugin;
  private processed = 0;
  private keepaliveCandidate: { walEnd: Lsn; after: number } | null = null;
  private safeKeepaliveLsn: Lsn | null = null;
  private ended = false;
  /** Highest server WAL end seen in a keepalive (for lag). */
  serverWalEnd: Lsn | null = null;

  constructor(private readonly opts: EdgeStreamOptions) {
    this.plugin = new TextPgoutputPlugin({ publication: opts.publication, originNone: opts.originNone });
    this.service = new LogicalReplicationService(opts.clientConfig, {
      acknowledge: { auto: false, timeoutSeconds: 0 },
      flowControl: { enabled: true },
    });
    this.service.on('error', (err: Error) => this.end(err));
    this.service.on('data', async (_lsn: string, msg: PgoutputMessage | DecodeFailure) => {
      if (this.ended) return;
      await opts.onMessage(msg);
      this.processed++;
      this.promoteKeepalive();
    });
    this.service.on('heartbeat', (lsn: string, _ts: number, shouldRespond: boolean) => {
      const walEnd = parseHexLsn(lsn);
      if (this.serverWalEnd === null || walEnd > this.serverWalEnd) this.serverWalEnd = walEnd;
      this.keepaliveCandidate = { walEnd, after: this.plugin.received };
      this.promoteKeepalive();
      if (shouldRespond) opts.onReplyRequested();
    });
  }

  /** Starts streaming; resolves when the server accepted START_REPLICATION or rejects. */
  start(): void {
    this.service
      .subscribe(this.plugin as never, this.opts.slot, formatLsn(this.opts.startLsn))
      .then(() => this.end(null))
      .catch((err: Error) => this.end(err));
  }

  /** Messages read from the socket but not yet handled. */
  pending(): number {
    return this.plugin.received - this.processed;
  }

  /**
   * WAL end of the latest keepalive whose preceding messages have all been handled; only
   * then is nothing from before it still in flight.
   */
  safeKeepalive(): Lsn | null {
    return this.safeKeepaliveLsn;
  }

  private promoteKeepalive(): void {
    const c = this.keepaliveCandidate;
    if (c && this.processed >= c.after) {
      this.safeKeepaliveLsn = c.walEnd;
      this.keepaliveCandidate = null;
    }
  }

  /**
   * Standby status update reporting `lsn` as written, flushed and applied. The library
   * reports "the given LSN + 1"; we pass lsn − 1 so the server gets exactly `lsn`, the
   * end of the last durable commit, as PostgreSQL's own apply worker reports it.
   */
  async sendStatus(lsn: Lsn, requestReply = false): Promise<boolean> {
    if (this.ended || lsn === 0n) return false;
    try {
      return await this.service.acknowledge(formatLsn((lsn - 1n) as Lsn), requestReply);
    } catch (err) {
      this.end(err as Error);
      return false;
    }
  }

  private end(err: Error | null): void {
    if (this.ended) return;
    this.ended = true;
    this.opts.onEnd(err);
  }

  async stop(): Promise<void> {
    this.ended = true;
    await this.service.destroy().catch(() => {});
  }
}

function parseHexLsn(text: string): Lsn {
  const [hi, lo] = text.split('/');
  return ((BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`)) as Lsn;
}
