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

  /** Resolves once every standby of the source has flushed `endLsn` (at once if there is none). */
  async waitFlushed(endLsn: Lsn, signal: AbortSignal): Promise<void> {
    if (this.known !== null && this.known >= endLsn) return;
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
