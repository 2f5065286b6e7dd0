import type { Queryable } from '@pgfleet/connection';
import { type Lsn, parseLsn } from '@pgfleet/wal';

export type SyncState = 'async' | 'potential' | 'sync' | 'quorum';

/** One row of pg_stat_replication: a walsender feeding a standby (or pg_basebackup). */
export interface StandbyStream {
  pid: number;
  applicationName: string;
  clientAddr: string | null;
  /** startup | catchup | streaming | backup | stopping */
  state: string;
  syncState: SyncState;
  /** The standby's priority in synchronous_standby_names (0 = not a sync candidate). */
  syncPriority: number;
  sentLsn: Lsn | null;
  writeLsn: Lsn | null;
  flushLsn: Lsn | null;
  replayLsn: Lsn | null;
  /** Bytes between this server's current WAL position and what the standby replayed; null before it reports. */
  replayLagBytes: bigint | null;
  /**
   * replay_lag in ms. The server clears it (null) once the standby has caught up and no WAL
   * has been written for a while, so null with replayLagBytes 0 means "idle, caught up".
   */
  replayLagMs: number | null;
  replyTime: Date | null;
}

// On a cascading standby pg_current_wal_lsn() errors; its own replay position is what it has.
const STREAMS_SQL = `SELECT pid, application_name, host(client_addr) AS client_addr, state, sync_state,
  sync_priority, sent_lsn::text AS sent_lsn, write_lsn::text AS write_lsn, flush_lsn::text AS flush_lsn,
  replay_lsn::text AS replay_lsn,
  pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END,
    replay_lsn)::text AS replay_lag_bytes,
  (EXTRACT(epoch FROM replay_lag) * 1000)::float8 AS replay_lag_ms, reply_time
FROM pg_stat_replication ORDER BY application_name, pid`;

const lsnOrNull = (v: string | null): Lsn | null => (v === null ? null : parseLsn(v));

/** pg_stat_replication on a primary (or cascading standby), one entry per connected walsender. */
export async function replicationStatus(q: Queryable): Promise<StandbyStream[]> {
  const { rows } = await q.query(STREAMS_SQL);
  return rows.map((r) => ({
    pid: Number(r.pid),
    applicationName: r.application_name ?? '',
    clientAddr: r.client_addr ?? null,
    state: r.state ?? 'unknown',
    syncState: r.sync_state as SyncState,
    syncPriority: Number(r.sync_priority ?? 0),
    sentLsn: lsnOrNull(r.sent_lsn),
    writeLsn: lsnOrNull(r.write_lsn),
    flushLsn: lsnOrNull(r.flush_lsn),
    replayLsn: lsnOrNull(r.replay_lsn),
    // numeric → text → bigint: exact, never through a float.
    replayLagBytes:
      r.replay_lag_bytes === null ? null : BigInt(String(r.replay_lag_bytes).replace(/\.0*$/, '')),
    replayLagMs: r.replay_lag_ms === null ? null : Number(r.replay_lag_ms),
    replyTime: r.reply_time ?? null,
  }));
}

/** pg_stat_wal_receiver on a standby: the process streaming WAL from the upstream. */
export interface WalReceiver {
  pid: number;
  /** stopping | starting | streaming | waiting | restarting | stopped */
  status: string;
  /** Last WAL flushed to disk by the receiver (flushed_lsn): what survives a crash. */
  receivedLsn: Lsn | null;
  /** Last WAL written (not yet necessarily flushed) by the receiver (written_lsn). */
  writtenLsn: Lsn | null;
  /** Timeline of receivedLsn. */
  receivedTli: number | null;
  /** The upstream's WAL end as last reported to us: lag = latestEndLsn - receivedLsn. */
  latestEndLsn: Lsn | null;
  senderHost: string | null;
  senderPort: number | null;
  slotName: string | null;
  lastMsgReceiptTime: Date | null;
  /**
   * Milliseconds since the last message from the sender, measured by the server's clock (so
   * no clock skew with the caller). The sender is alive if this is small: a walsender with
   * nothing to send is silent up to wal_sender_timeout / 2, so a large value proves nothing.
   */
  lastMsgAgeMs: number | null;
}

const RECEIVER_SQL = `SELECT pid, status, written_lsn::text AS written_lsn, flushed_lsn::text AS flushed_lsn,
  received_tli, latest_end_lsn::text AS latest_end_lsn, sender_host, sender_port, slot_name,
  last_msg_receipt_time,
  (EXTRACT(epoch FROM clock_timestamp() - last_msg_receipt_time) * 1000)::float8 AS last_msg_age_ms
FROM pg_stat_wal_receiver`;

/**
 * The WAL receiver, or null when none runs (a primary, or a standby between reconnects).
 * Needs superuser or pg_read_all_stats: other roles see NULL in every column but pid.
 */
export async function walReceiverStatus(q: Queryable): Promise<WalReceiver | null> {
  const { rows } = await q.query(RECEIVER_SQL);
  const r = rows[0];
  if (!r || r.pid === null) return null;
  return {
    pid: Number(r.pid),
    status: r.status,
    receivedLsn: lsnOrNull(r.flushed_lsn),
    writtenLsn: lsnOrNull(r.written_lsn),
    receivedTli: r.received_tli === null ? null : Number(r.received_tli),
    latestEndLsn: lsnOrNull(r.latest_end_lsn),
    senderHost: r.sender_host ?? null,
    senderPort: r.sender_port === null ? null : Number(r.sender_port),
    slotName: r.slot_name ?? null,
    lastMsgReceiptTime: r.last_msg_receipt_time ?? null,
    lastMsgAgeMs: r.last_msg_age_ms === null ? null : Math.max(0, Number(r.last_msg_age_ms)),
  };
}
