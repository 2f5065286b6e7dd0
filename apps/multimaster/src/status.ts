import { connect, toPgfleetError } from '@pgfleet/connection';
import type pg from 'pg';
import { committedProgressSql } from './apply/progress-mark.js';
import type { ResolvedConfig } from './config.js';
import { edgeHolder } from './ha/claim.js';
import { edgesFor } from './naming.js';

export interface EdgeDbStatus {
  edge: string;
  source: string;
  target: string;
  /** Slot is being streamed from (a replicator is connected). */
  active: boolean | null;
  confirmedFlushLsn: string | null;
  sourceWalLsn: string | null;
  /** Source WAL not yet confirmed by the target, in bytes. */
  lagBytes: number | null;
  /** Origin progress on the target: end LSN of the last applied transaction. */
  appliedLsn: string | null;
  conflicts: number | null;
  /** Transactions waiting in dead letters with action `pause` (edge paused). */
  pausedAt: string | null;
  /** The replicator that drives the edge now (its claim on the target), null when none does. */
  holder: string | null;
  error: string | null;
}

async function tryConnect(conninfo: string): Promise<pg.Client | Error> {
  try {
    return await connect(conninfo, { connectTimeoutMs: 3000, applicationName: 'pgfleet-mm:status' });
  } catch (err) {
    return toPgfleetError(err);
  }
}

/** Conflict records per edge on a node: one scan of its pgfleet.conflicts for all edges into it. */
async function conflictCounts(db: pg.Client): Promise<Map<string, number>> {
  const { rows } = await db.query<{ edge: string; n: number }>(
    'SELECT edge, count(*)::int AS n FROM pgfleet.conflicts GROUP BY edge',
  );
  return new Map(rows.map((r) => [r.edge, r.n]));
}

/** Per-edge status read from the databases (works without a running replicator). */
export async function meshStatus(config: ResolvedConfig): Promise<EdgeDbStatus[]> {
  const clients = new Map<string, pg.Client | Error>();
  await Promise.all(config.nodes.map(async (n) => clients.set(n.name, await tryConnect(n.conninfo))));
  const counts = new Map<string, Map<string, number>>();
  try {
    const out: EdgeDbStatus[] = [];
    for (const e of edgesFor(config.nodes)) {
      const s: EdgeDbStatus = {
        edge: e.id,
        source: e.source,
        target: e.target,
        active: null,
        confirmedFlushLsn: null,
        sourceWalLsn: null,
        lagBytes: null,
        appliedLsn: null,
        conflicts: null,
        pausedAt: null,
        holder: null,
        error: null,
      };
      const src = clients.get(e.source);
      const dst = clients.get(e.target);
      try {
        if (src instanceof Error) throw src;
        const { rows } = await src!.query(
          `SELECT active, confirmed_flush_lsn::text AS confirmed, pg_current_wal_lsn()::text AS wal,
                  pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::int8 AS lag
             FROM pg_replication_slots WHERE slot_name = $1`,
          [e.slot],
        );
        if (rows[0]) {
          s.active = rows[0].active;
          s.confirmedFlushLsn = rows[0].confirmed;
          s.sourceWalLsn = rows[0].wal;
          s.lagBytes = Number(rows[0].lag);
        } else s.error = `slot ${e.slot} missing on ${e.source}`;
        if (dst instanceof Error) throw dst;
        const { rows: t } = await dst!.query(
          // What committed: after an apply session ended between naming a transaction and
          // committing it, the origin alone says more until the edge's next session.
          `SELECT nullif(p.at, '0/0')::text AS applied,
                  (SELECT max(commit_lsn)::text FROM pgfleet.dead_letters WHERE edge = $2 AND action = 'pause'
                     AND commit_lsn > p.at) AS paused
             FROM (SELECT ${committedProgressSql('$1', false)} AS at) AS p`,
          [e.origin, e.id],
        );
        s.appliedLsn = t[0]?.applied ?? null;
        let byEdge = counts.get(e.target);
        if (!byEdge) {
          byEdge = await conflictCounts(dst!);
          counts.set(e.target, byEdge);
        }
        s.conflicts = byEdge.get(e.id) ?? 0;
        s.pausedAt = t[0]?.paused ?? null;
        s.holder = (await edgeHolder(dst!, e))?.holder ?? null;
      } catch (err) {
        s.error = toPgfleetError(err).message;
      }
      out.push(s);
    }
    return out;
  } finally {
    await Promise.all(
      [...clients.values()].map((c) => (c instanceof Error ? null : c.end().catch(() => {}))),
    );
  }
}
