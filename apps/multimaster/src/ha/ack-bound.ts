import { type Lsn, parseLsn } from '@pgfleet/wal';
import type pg from 'pg';

/**
 * One reading of an edge's replication origin on the target: the source position it has
 * applied (`remote`) and the end of the target's own commit record that recorded it
 * (`local`), as pg_replication_origin_status shows them.
 */
export interface ProgressSample {
  remote: Lsn;
  local: Lsn;
}

/** Samples kept while the standby catches up; a standby further behind only delays acks more. */
const MAX_SAMPLES = 256;

/**
 * What the target's standby is known to hold of this edge's progress. An edge must not
 * confirm to its source what only the target's primary holds: if that primary is lost and
 * its standby promoted, the edge resumes from the standby's origin progress, and the source
 * slot must still have every transaction after it (otherwise they are skipped: a gap). This
 * is the inbound twin of synchronized_standby_slots, needed on every major, and also when
 * the apply sessions run with synchronous_commit = off under synchronous replication.
 */
export class StandbyAckBound {
  private samples: ProgressSample[] = [];
  private safe: Lsn | null = null;

  /**
   * Records a sample read on the primary, then the standby's flush position read after it,
   * and returns the largest applied source position whose local commit the standby has
   * flushed (null: none known yet).
   */
  update(sample: ProgressSample | null, standbyFlush: Lsn | null): Lsn | null {
    if (sample) {
      const last = this.samples.at(-1);
      if (!last || last.remote !== sample.remote || last.local !== sample.local) this.samples.push(sample);
      if (this.samples.length > MAX_SAMPLES) this.samples.splice(0, this.samples.length - MAX_SAMPLES);
    }
    this.safe = safeRemote(this.samples, standbyFlush, this.safe);
    if (standbyFlush !== null) this.samples = this.samples.filter((s) => s.local > standbyFlush);
    return this.safe;
  }
}

/**
 * Pure: the largest `remote` among samples whose `local` the standby has flushed, never
 * lower than `previous`. Samples are taken before the flush position is read, so a sample
 * with local ≤ flush is on the standby with everything committed before it.
 */
export function safeRemote(
  samples: readonly ProgressSample[],
  standbyFlush: Lsn | null,
  previous: Lsn | null,
): Lsn | null {
  let best = previous;
  if (standbyFlush === null) return best;
  for (const s of samples) if (s.local <= standbyFlush && (best === null || s.remote > best)) best = s.remote;
  return best;
}

/**
 * One query on the target's primary: the edge's origin progress (remote, local) and then
 * the flush position of its standbys (the least restart_lsn of their physical slots, which
 * walsender.c moves to the flush position each standby reports). `standbys` = 0 means no
 * standby slot exists on this server now: nothing to bound by.
 */
export const ORIGIN_AND_STANDBY_SQL = `
  SELECT s.remote_lsn::text AS remote, s.local_lsn::text AS local,
         (SELECT min(restart_lsn)::text FROM pg_replication_slots
           WHERE slot_type = 'physical' AND slot_name = ANY($2::text[])) AS flush,
         (SELECT count(*) FROM pg_replication_slots
           WHERE slot_type = 'physical' AND slot_name = ANY($2::text[]))::int AS standbys
    FROM (SELECT 1) one
    LEFT JOIN pg_replication_origin_status s ON s.external_id = $1`;

export async function readOriginAndStandby(
  client: pg.Client,
  origin: string,
  standbySlots: readonly string[],
): Promise<{ sample: ProgressSample | null; flush: Lsn | null; standbys: number }> {
  const { rows } = await client.query(ORIGIN_AND_STANDBY_SQL, [origin, standbySlots]);
  const r = rows[0];
  const sample =
    r?.remote && r.local
      ? { remote: parseLsn(r.remote as string), local: parseLsn(r.local as string) }
      : null;
  return { sample, flush: r?.flush ? parseLsn(r.flush as string) : null, standbys: Number(r?.standbys ?? 0) };
}
