import { connect, pause, SqlState, sqlStateOf } from '@pgfleet/connection';
import { type Lsn, parseNullableLsn } from '@pgfleet/wal';
import type pg from 'pg';
import type { Logger } from 'pino';
import { committedProgressSql } from '../apply/progress-mark.js';

export interface OriginHold {
  /** The session holding each origin; usable for work that must run through that origin. */
  sessions: Map<string, pg.Client>;
  /** Progress of each held origin (flushed); frozen while held. */
  progress(): Promise<Map<string, Lsn | null>>;
  /** Gives the origins back; the paused edges reconnect on their own. */
  release(): Promise<void>;
}

/**
 * Pauses the apply of some edges into a node by taking their replication origins (or keeps
 * a replicator from applying into a node that is still joining): an origin can be set up by
 * one session at a time (PostgreSQL 18 shares one only with a caller that names the
 * holder's PID), and an apply session cannot commit a transaction without it. A replicator
 * session holding the origin is terminated (its open transaction rolls back; the edge
 * resumes from origin progress, exactly once) and its reconnects fail until release().
 * While held, no transaction from those sources commits on the node, so progress read now
 * matches any snapshot taken now.
 */
export async function holdOrigins(
  conninfo: string,
  origins: string[],
  opts: { timeoutMs?: number; logger?: Logger; signal?: AbortSignal } = {},
): Promise<OriginHold> {
  const deadline = Date.now() + (opts.timeoutMs ?? 15_000);
  const sessions = new Map<string, pg.Client>();
  const release = async () => {
    await Promise.all(
      [...sessions.values()].map(async (c) => {
        await c.query('ROLLBACK').catch(() => {});
        await c.query('SELECT pg_replication_origin_session_reset()').catch(() => {});
        await c.end().catch(() => {});
      }),
    );
  };
  try {
    for (const origin of origins) {
      const c = await connect(conninfo, {
        connectTimeoutMs: 5000,
        applicationName: 'pgfleet-mm:add-node:hold',
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
      sessions.set(origin, c);
      for (;;) {
        opts.signal?.throwIfAborted();
        try {
          await c.query('SELECT pg_replication_origin_session_setup($1)', [origin]);
          break;
        } catch (err) {
          if (sqlStateOf(err) !== SqlState.OBJECT_IN_USE || Date.now() > deadline) throw err;
          // "replication origin with ID n is already active for PID p" (origin.c).
          const pid = /PID (\d+)/.exec((err as Error).message ?? '')?.[1];
          if (pid) {
            opts.logger?.info({ origin, pid: Number(pid) }, 'pausing apply session that holds the origin');
            await c.query('SELECT pg_terminate_backend($1)', [Number(pid)]);
          }
          await pause(20);
        }
      }
    }
  } catch (err) {
    await release();
    throw err;
  }
  return {
    sessions,
    async progress() {
      const out = new Map<string, Lsn | null>();
      for (const [o, c] of sessions) {
        // The row, not the origin alone: the session we terminated may have left the origin
        // naming a transaction it did not commit (progress-mark.ts).
        const { rows } = await c.query(
          `SELECT nullif(${committedProgressSql('$1', true, true)}, '0/0')::text AS lsn`,
          [o],
        );
        out.set(o, parseNullableLsn(rows[0].lsn));
      }
      return out;
    },
    release,
  };
}
