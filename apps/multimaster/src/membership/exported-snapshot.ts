import { connect, quoteIdent } from '@pgfleet/connection';
import { type Lsn, parseLsn } from '@pgfleet/wal';
import type pg from 'pg';

export interface ExportedSlot {
  slot: string;
  /** The slot streams every transaction that commits after this point, and nothing before. */
  consistentPoint: Lsn;
  /** Snapshot that sees exactly the transactions committed before consistentPoint. */
  snapshotName: string;
  /** Ends the walsender session; import the snapshot first (it is valid only until then). */
  close(): Promise<void>;
}

/**
 * Creates a logical slot on a walsender connection and exports its snapshot. The snapshot
 * is built from the WAL at the slot's consistent point, so data read with it plus the
 * slot's stream is every change exactly once. The legacy `EXPORT_SNAPSHOT` spelling is
 * understood by PostgreSQL 15 through 18 (the `(SNAPSHOT 'export')` form only from 15 on
 * as well, but the legacy one keeps a single code path).
 */
export async function createSlotWithSnapshot(
  conninfo: string,
  slot: string,
  opts: {
    connectTimeoutMs?: number;
    signal?: AbortSignal;
    applicationName?: string;
    /** PostgreSQL 17+: a failover slot (needs the option-list syntax, which 15 also reads). */
    failover?: boolean;
  } = {},
): Promise<ExportedSlot> {
  const client: pg.Client = await connect(conninfo, {
    replication: 'database',
    connectTimeoutMs: opts.connectTimeoutMs ?? 5000,
    applicationName: opts.applicationName ?? 'pgfleet-mm:add-node:snapshot',
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  try {
    const { rows } = await client.query(
      opts.failover
        ? `CREATE_REPLICATION_SLOT ${quoteIdent(slot)} LOGICAL pgoutput (SNAPSHOT 'export', FAILOVER)`
        : `CREATE_REPLICATION_SLOT ${quoteIdent(slot)} LOGICAL pgoutput EXPORT_SNAPSHOT`,
    );
    const r = rows[0] as { consistent_point: string; snapshot_name: string };
    return {
      slot,
      consistentPoint: parseLsn(r.consistent_point),
      snapshotName: r.snapshot_name,
      close: () => client.end().catch(() => {}),
    };
  } catch (err) {
    await client.end().catch(() => {});
    throw err;
  }
}
