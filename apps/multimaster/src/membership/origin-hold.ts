import { connect, pause, SqlState, sqlStateOf } from '@pgfleet/connection';
import { type Lsn, parseNullableLsn } from '@pgfleet/wal';
import type pg from 'pg';
import type { Logger } from 'pino';
import { committedProgressSql, ensureOriginWitness, LOCK_ORIGIN_GATE_SQL } from '../apply/progress-mark.js';

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
      await takeOrigin(c, origin, deadline, opts);
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
        // Not the origin alone: the session we terminated may have left the origin naming a
        // transaction it did not commit (progress-mark.ts).
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

/**
 * Takes `origin` in session `c`, ending the session that holds it. The origin's gate (its
 * gate row's lock) stays closed meanwhile: the ended holder's replicator, retrying its
 * setup, waits at the gate instead of taking the origin back before this session does.
 */
async function takeOrigin(
  c: pg.Client,
  origin: string,
  deadline: number,
  opts: { logger?: Logger; signal?: AbortSignal },
): Promise<void> {
  await c.query('BEGIN');
  try {
    await c.query(`SELECT set_config('lock_timeout', $1, true)`, [`${Math.max(1, deadline - Date.now())}ms`]);
    const { rows } = await c.query(`SELECT to_regclass('pgfleet.apply_origins') IS NOT NULL AS gated`);
    if (rows[0].gated) await c.query(LOCK_ORIGIN_GATE_SQL, [origin]);
    for (;;) {
      opts.signal?.throwIfAborted();
      await c.query('SAVEPOINT take');
      try {
        await c.query('SELECT pg_replication_origin_session_setup($1)', [origin]);
        break;
      } catch (err) {
        await c.query('ROLLBACK TO SAVEPOINT take');
        if (sqlStateOf(err) !== SqlState.OBJECT_IN_USE || Date.now() > deadline) throw err;
        // "replication origin with ID n is already active for PID p" (origin.c).
        const pid = /PID (\d+)/.exec((err as Error).message ?? '')?.[1];
        if (pid) {
          opts.logger?.info({ origin, pid: Number(pid) }, 'pausing apply session that holds the origin');
          await c.query('SELECT pg_terminate_backend($1)', [Number(pid)]);
        }
        await pause(10);
      }
    }
    // Transactions committed through this session (add-node's copy) leave the witness too.
    if (rows[0].gated) await ensureOriginWitness(c, origin);
    await c.query('COMMIT');
  } catch (err) {
    await c.query('ROLLBACK').catch(() => {});
    throw err;
  }
}
