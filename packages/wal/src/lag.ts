import { PgfleetError, type Queryable } from '@pgfleet/connection';
import { toBoolean, toNumberOrNull, toStringOrNull } from './internal/values.js';
import { type Lsn, lsnDiff, maxLsn, parseNullableLsn } from './lsn.js';
import type { SlotWalStatus } from './slots.js';

// The server's own WAL position. pg_current_wal_lsn() raises an error during recovery, so a
// standby reports how far it has WAL instead: the later of received (streamed and flushed) and
// replayed (replay can be ahead of receive after a restart, when receive starts over from the
// replay point, or when WAL comes from the archive).
// Column names are prefixed so they never collide with the view columns they are joined with.
const POSITION_SQL = `pg_is_in_recovery() AS own_in_recovery,
  CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END AS own_current_lsn,
  pg_last_wal_receive_lsn()::text AS own_receive_lsn,
  pg_last_wal_replay_lsn()::text AS own_replay_lsn`;

// biome-ignore lint/suspicious/noExplicitAny: rows come untyped from the driver
function positionOf(row: any): Lsn {
  const current = parseNullableLsn(row.own_current_lsn);
  if (current !== null) return current;
  const known = [parseNullableLsn(row.own_receive_lsn), parseNullableLsn(row.own_replay_lsn)].filter(
    (lsn): lsn is Lsn => lsn !== null,
  );
  const [first, ...rest] = known;
  if (first === undefined) {
    throw new PgfleetError(
      'WAL_POSITION_UNKNOWN',
      'server is in recovery but reports neither a received nor a replayed WAL position',
      { inRecovery: toBoolean(row.own_in_recovery) },
    );
  }
  return maxLsn(first, ...rest);
}

/**
 * How far this server's WAL goes: `pg_current_wal_lsn()` on a primary; on a standby the later of
 * `pg_last_wal_receive_lsn()` and `pg_last_wal_replay_lsn()` (the primary-only function errors
 * during recovery).
 */
export async function currentWalLsn(q: Queryable): Promise<Lsn> {
  const { rows } = await q.query(`SELECT ${POSITION_SQL}`);
  return positionOf(rows[0]);
}

/** Recovery progress of a standby. */
export interface StandbyReplayState {
  /** Last WAL position received and flushed by the walreceiver; `null` if it never streamed. */
  receiveLsn: Lsn | null;
  /** Last WAL position replayed. */
  replayLsn: Lsn | null;
  /** True when replay is paused or a pause was requested (`pg_wal_replay_pause()`). */
  replayPaused: boolean;
  /** Commit time of the last replayed transaction; `null` if none was replayed since startup. */
  lastReplayAt: Date | null;
}

/** The replay state of a standby, or `null` when the server is not in recovery (a primary). */
export async function standbyReplayState(q: Queryable): Promise<StandbyReplayState | null> {
  // pg_get_wal_replay_pause_state() raises an error outside recovery; the CASE keeps it from running.
  const { rows } = await q.query(
    `SELECT pg_is_in_recovery() AS in_recovery,
            pg_last_wal_receive_lsn()::text AS receive_lsn,
            pg_last_wal_replay_lsn()::text AS replay_lsn,
            CASE WHEN pg_is_in_recovery() THEN pg_get_wal_replay_pause_state() END AS pause_state,
            (extract(epoch FROM pg_last_xact_replay_timestamp()) * 1000)::float8 AS last_replay_ms`,
  );
  const row = rows[0];
  if (!toBoolean(row.in_recovery)) return null;
  const lastReplayMs = toNumberOrNull(row.last_replay_ms);
  return {
    receiveLsn: parseNullableLsn(row.receive_lsn),
    replayLsn: parseNullableLsn(row.replay_lsn),
    replayPaused: row.pause_state !== null && row.pause_state !== 'not paused',
    lastReplayAt: lastReplayMs === null ? null : new Date(lastReplayMs),
  };
}

/** One connected standby (or logical walsender) as the sending server sees it. */
export interface ReplicationLag {
  pid: number;
  applicationName: string;
  clientAddr: string | null;
  /** `startup`, `catchup`, `streaming`, `backup` or `stopping`. */
  state: string;
  /** `async`, `potential`, `sync` or `quorum`. */
  syncState: string;
  /** This server's WAL position when the row was read (see {@link currentWalLsn}). */
  currentLsn: Lsn;
  sentLsn: Lsn | null;
  writeLsn: Lsn | null;
  flushLsn: Lsn | null;
  replayLsn: Lsn | null;
  /** Bytes between {@link currentLsn} and each position; `null` when the position is unknown. */
  sentLagBytes: bigint | null;
  writeLagBytes: bigint | null;
  flushLagBytes: bigint | null;
  replayLagBytes: bigint | null;
  /**
   * Time-based lag as the server measures it (`write_lag`, `flush_lag`, `replay_lag`): how long
   * recent WAL took to be written/flushed/replayed. `null` when the standby is idle and caught up.
   */
  writeLagSeconds: number | null;
  flushLagSeconds: number | null;
  replayLagSeconds: number | null;
}

/** Rows of `pg_stat_replication` with lag in bytes (our LSN math) and seconds, ordered by name. */
export async function replicationLag(q: Queryable): Promise<ReplicationLag[]> {
  const { rows } = await q.query(
    `WITH here AS (SELECT ${POSITION_SQL})
     SELECT here.*, r.pid, r.application_name, r.client_addr::text AS client_addr, r.state, r.sync_state,
            r.sent_lsn::text AS sent_lsn, r.write_lsn::text AS write_lsn,
            r.flush_lsn::text AS flush_lsn, r.replay_lsn::text AS replay_lsn,
            extract(epoch FROM r.write_lag)::float8 AS write_lag_s,
            extract(epoch FROM r.flush_lag)::float8 AS flush_lag_s,
            extract(epoch FROM r.replay_lag)::float8 AS replay_lag_s
     FROM pg_stat_replication r CROSS JOIN here
     ORDER BY r.application_name, r.pid`,
  );
  return rows.map((row) => {
    const currentLsn = positionOf(row);
    const sentLsn = parseNullableLsn(row.sent_lsn);
    const writeLsn = parseNullableLsn(row.write_lsn);
    const flushLsn = parseNullableLsn(row.flush_lsn);
    const replayLsn = parseNullableLsn(row.replay_lsn);
    return {
      pid: toNumberOrNull(row.pid)!,
      applicationName: String(row.application_name ?? ''),
      clientAddr: toStringOrNull(row.client_addr),
      state: String(row.state ?? ''),
      syncState: String(row.sync_state ?? ''),
      currentLsn,
      sentLsn,
      writeLsn,
      flushLsn,
      replayLsn,
      sentLagBytes: lagBytes(currentLsn, sentLsn),
      writeLagBytes: lagBytes(currentLsn, writeLsn),
      flushLagBytes: lagBytes(currentLsn, flushLsn),
      replayLagBytes: lagBytes(currentLsn, replayLsn),
      writeLagSeconds: toNumberOrNull(row.write_lag_s),
      flushLagSeconds: toNumberOrNull(row.flush_lag_s),
      replayLagSeconds: toNumberOrNull(row.replay_lag_s),
    };
  });
}

/** WAL a slot holds back, measured from this server's current position. */
export interface SlotLag {
  name: string;
  type: 'physical' | 'logical';
  active: boolean;
  currentLsn: Lsn;
  restartLsn: Lsn | null;
  confirmedFlushLsn: Lsn | null;
  /** Bytes of WAL kept on disk for this slot (current - restart_lsn). */
  retainedBytes: bigint | null;
  /** Logical slots: bytes not yet confirmed by the consumer (current - confirmed_flush_lsn). */
  confirmedLagBytes: bigint | null;
  walStatus: SlotWalStatus | null;
}

/** Per-slot WAL retention and consumer lag in bytes, ordered by slot name. */
export async function slotLag(q: Queryable): Promise<SlotLag[]> {
  const { rows } = await q.query(
    `WITH here AS (SELECT ${POSITION_SQL})
     SELECT here.*, s.slot_name, s.slot_type, s.active, s.wal_status,
            s.restart_lsn::text AS restart_lsn, s.confirmed_flush_lsn::text AS confirmed_flush_lsn
     FROM pg_replication_slots s CROSS JOIN here
     ORDER BY s.slot_name`,
  );
  return rows.map((row) => {
    const currentLsn = positionOf(row);
    const restartLsn = parseNullableLsn(row.restart_lsn);
    const confirmedFlushLsn = parseNullableLsn(row.confirmed_flush_lsn);
    return {
      name: String(row.slot_name),
      type: row.slot_type === 'logical' ? 'logical' : 'physical',
      active: toBoolean(row.active),
      currentLsn,
      restartLsn,
      confirmedFlushLsn,
      retainedBytes: lagBytes(currentLsn, restartLsn),
      confirmedLagBytes: lagBytes(currentLsn, confirmedFlushLsn),
      walStatus: (toStringOrNull(row.wal_status) as SlotWalStatus | null) ?? null,
    };
  });
}

/**
 * Bytes `position` is behind `current`, never negative: positions are read in one statement but
 * from different processes' shared memory, so a standby can report a position a few bytes past
 * the snapshot of `current`; that is "caught up", not negative lag.
 */
export function lagBytes(current: Lsn, position: Lsn | null): bigint | null {
  if (position === null) return null;
  const diff = lsnDiff(current, position);
  return diff < 0n ? 0n : diff;
}
