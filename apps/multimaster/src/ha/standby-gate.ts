import { type Lsn, parseLsn } from '@pgfleet/wal';
import type pg from 'pg';

/** How often a waiting commit re-reads the standby's position. */
const POLL_MS = 5;

/**
 * Before PostgreSQL 17 nothing stops a source's walsender from sending a transaction its
 * standby has not flushed yet (logical decoding reads up to the local flush, also under
 * synchronous replication, where the commit waits for the standby only afterwards). Applied
 * on a peer and then lost in a failover, it would exist on the peer but not on the node
 * that wrote it. This gate holds each source transaction's commit on the target until the
 * source's standbys have flushed its end: the client-side twin of PostgreSQL 17's
 * synchronized_standby_slots. Standby slots that do not exist on the source's primary
 * (a node running alone after a failover) are not waited for.
 */
export class StandbyFlushGate {
  private known: Lsn | null = null;

  constructor(
    private readonly source: pg.Client,
    private readonly standbySlots: readonly string[],
  ) {}

  /** Least flush position of the existing standby slots; null when there are none. */
  private async read(): Promise<{ flush: Lsn | null; standbys: number }> {
    const { rows } = await this.source.query(
      `SELECT min(restart_lsn)::text AS flush, count(*)::int AS standbys FROM pg_replication_slots
        WHERE slot_type = 'physical' AND slot_name = ANY($1::text[])`,
      [this.standbySlots],
    );
    const r = rows[0];
    return { flush: r?.flush ? parseLsn(r.flush as string) : null, standbys: Number(r?.standbys ?? 0) };
  }

  /** Whether the standbys are already known to have flushed `endLsn` (no query). */
  passes(endLsn: Lsn): boolean {
    return this.known !== null && this.known >= endLsn;
  }

  /** Resolves once every standby of the source has flushed `endLsn` (at once if there is none). */
  async waitFlushed(endLsn: Lsn, signal: AbortSignal): Promise<void> {
    if (this.passes(endLsn)) return;
    for (;;) {
      signal.throwIfAborted();
      const { flush, standbys } = await this.read();
      if (standbys === 0) return;
      if (flush !== null) this.known = flush;
      if (flush !== null && flush >= endLsn) return;
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }
}

/** End LSN of a pgoutput Commit message ('C', flags, commit LSN, end LSN, timestamp), else null. */
export function commitEndLsn(msg: Buffer): Lsn | null {
  if (msg[0] !== 0x43 || msg.length < 26) return null;
  return msg.readBigUInt64BE(10) as Lsn;
}

export interface GatedStreamOptions {
  gate: Pick<StandbyFlushGate, 'passes' | 'waitFlushed'>;
  /** Hands one message on (the applier's receive). */
  deliver(msg: Buffer): void;
  /** Pauses (true) or resumes (false) the replication stream while a commit waits. */
  hold(on: boolean): void;
  /** The gate could not be read: the session ends and resumes from origin progress. */
  fail(err: Error): void;
  signal: AbortSignal;
}

/**
 * Puts a StandbyFlushGate between the replication stream and the applier: messages pass
 * in order, and a Commit whose end the source's standbys have not flushed yet waits (with
 * everything after it, copied, since the stream reuses its buffer) while the stream is paused.
 * The applier sees the transaction's changes but cannot commit it before the commit arrives.
 */
export class GatedStream {
  private readonly queue: Buffer[] = [];

  constructor(private readonly o: GatedStreamOptions) {}

  receive(msg: Buffer): void {
    if (this.queue.length > 0) {
      this.queue.push(Buffer.from(msg));
      return;
    }
    const end = commitEndLsn(msg);
    if (end === null || this.o.gate.passes(end)) {
      this.o.deliver(msg);
      return;
    }
    this.queue.push(Buffer.from(msg));
    this.o.hold(true);
    void this.drain();
  }

  /** Messages held back behind a waiting commit. */
  pending(): number {
    return this.queue.length;
  }

  private async drain(): Promise<void> {
    try {
      // The head stays queued while it waits, so messages arriving meanwhile queue behind it.
      for (let msg = this.queue[0]; msg !== undefined; msg = this.queue[0]) {
        const end = commitEndLsn(msg);
        if (end !== null && !this.o.gate.passes(end)) await this.o.gate.waitFlushed(end, this.o.signal);
        this.queue.shift();
        this.o.deliver(msg);
      }
      this.o.hold(false);
    } catch (err) {
      this.o.fail(err as Error);
    }
  }
}
