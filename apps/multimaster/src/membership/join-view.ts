import type pg from 'pg';
import { makeEdge, originName } from '../naming.js';
import { formatPgTimestamp, type PgMicros } from '../pg-time.js';

/**
 * What the copy source knew when its snapshot was taken, so that the edges into a new node
 * judge every copied row version as the source's edges judge it (README "Conflicts"): a row
 * copied from the source is the source's version, with its commit time and origin, and a
 * change arriving later races with it or not exactly as it does on the source.
 */
export interface SourceView {
  /** The source's floor (its own registration in pgfleet.nodes), timestamptz text; null without one. */
  floor: string | null;
  /** pgfleet.edge_seen of each edge other → source: what each other node had seen at the edge's position. */
  seenByOther: Map<string, unknown>;
}

/** Reads the source's view inside the snapshot the copy reads (`reader`'s transaction). */
export async function readSourceView(
  reader: pg.Client,
  source: string,
  others: readonly string[],
): Promise<SourceView> {
  const { rows: f } = await reader.query(
    `SELECT (coalesce(min(registered_at) FILTER (WHERE is_local), min(registered_at)))::text AS floor FROM pgfleet.nodes`,
  );
  const { rows: s } = await reader.query(
    'SELECT edge, seen FROM pgfleet.edge_seen WHERE edge = ANY($1::text[])',
    [others.map((x) => makeEdge(x, source).id)],
  );
  const byEdge = new Map(s.map((r) => [r.edge as string, r.seen as unknown]));
  const seenByOther = new Map<string, unknown>();
  for (const x of others) {
    const seen = byEdge.get(makeEdge(x, source).id);
    if (seen !== undefined) seenByOther.set(x, seen);
  }
  return { floor: (f[0]?.floor as string | null) ?? null, seenByOther };
}

/**
 * The pgfleet.edge_seen rows of the edges into the new node, as they must start:
 * - other → new starts where the source's apply of other stood at the snapshot, so it starts
 *   with what the source recorded for other → source at that position;
 * - source → new starts at the snapshot, when the source had applied, from each other node,
 *   every version the copy holds from it and none that arrives later through that node's own
 *   edge: the newest copied commit time per origin is exactly what it had seen.
 */
export function startingSeen(
  newNode: string,
  source: string,
  others: readonly string[],
  view: SourceView,
  newestByOrigin: ReadonlyMap<string, PgMicros>,
): Array<{ edge: string; seen: unknown }> {
  const out: Array<{ edge: string; seen: unknown }> = [];
  for (const x of others) {
    const seen = view.seenByOther.get(x);
    if (seen !== undefined) out.push({ edge: makeEdge(x, newNode).id, seen });
  }
  const fromSource: Record<string, string> = {};
  for (const x of others) {
    const us = newestByOrigin.get(originName(x));
    if (us !== undefined) fromSource[x] = formatPgTimestamp(us);
  }
  out.push({ edge: makeEdge(source, newNode).id, seen: fromSource });
  return out;
}

/** Writes the starting pgfleet.edge_seen rows on the new node (before its origins are given back). */
export async function writeStartingSeen(
  client: pg.Client,
  rows: ReadonlyArray<{ edge: string; seen: unknown }>,
): Promise<void> {
  for (const r of rows) {
    await client.query(
      `INSERT INTO pgfleet.edge_seen (edge, seen) VALUES ($1, $2::jsonb)
       ON CONFLICT (edge) DO UPDATE SET seen = EXCLUDED.seen`,
      [r.edge, JSON.stringify(r.seen)],
    );
  }
}
