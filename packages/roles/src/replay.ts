import type { Queryable } from '@pgfleet/connection';
import { SqlState, sqlStateOf } from '@pgfleet/connection';
import { type Lsn, parseLsn } from '@pgfleet/wal';
import { RoleError } from './errors.js';

export interface ReplayStatus {
  /** Last WAL received and flushed by streaming (null if this standby never streamed). */
  receiveLsn: Lsn | null;
  /** Last WAL replayed (visible to queries). */
  replayLsn: Lsn | null;
  /** A pause was requested (pg_wal_replay_pause); replay stops at the next record boundary. */
  replayPaused: boolean;
  /** 'not paused' | 'pause requested' | 'paused' (pg_get_wal_replay_pause_state, PG 14+). */
  pauseState: string;
  /** Commit timestamp of the last replayed transaction (null before any). */
  lastReplayAt: Date | null;
  /** receiveLsn - replayLsn in bytes, 0 when either is unknown or replay is ahead (archive). */
  lagBytes: bigint;
}

const REPLAY_SQL = `SELECT pg_last_wal_receive_lsn()::text AS receive_lsn,
  pg_last_wal_replay_lsn()::text AS replay_lsn,
  pg_get_wal_replay_pause_state() AS pause_state,
  pg_last_xact_replay_timestamp() AS last_replay_at`;

async function onStandby<T>(action: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    // pg_get_wal_replay_pause_state() & co. raise 55000 "recovery is not in progress".
    if (sqlStateOf(err) === SqlState.OBJECT_NOT_IN_PREREQUISITE_STATE) {
      throw new RoleError(
        'NOT_IN_RECOVERY',
        `${action} needs a standby, but the node is not in recovery`,
        {
          action,
        },
        { cause: err },
      );
    }
    throw err;
  }
}

/** Replay progress on a standby. Throws RoleError NOT_IN_RECOVERY on a primary. */
export async function replayStatus(q: Queryable): Promise<ReplayStatus> {
  return onStandby('replayStatus', async () => {
    const { rows } = await q.query(REPLAY_SQL);
    const r = rows[0];
    const receiveLsn = r.receive_lsn === null ? null : parseLsn(r.receive_lsn);
    const replayLsn = r.replay_lsn === null ? null : parseLsn(r.replay_lsn);
    const lag =
      receiveLsn !== null && replayLsn !== null && receiveLsn > replayLsn ? receiveLsn - replayLsn : 0n;
    return {
      receiveLsn,
      replayLsn,
      replayPaused: r.pause_state !== 'not paused',
      pauseState: r.pause_state,
      lastReplayAt: r.last_replay_at ?? null,
      lagBytes: lag,
    };
  });
}

/** Requests a replay pause (takes effect at the next WAL record). Standby only. */
export async function pauseReplay(q: Queryable): Promise<void> {
  await onStandby('pauseReplay', () => q.query('SELECT pg_wal_replay_pause()'));
}

/** Resumes replay. Standby only. */
export async function resumeReplay(q: Queryable): Promise<void> {
  await onStandby('resumeReplay', () => q.query('SELECT pg_wal_replay_resume()'));
}
