import { eventually } from './eventually.js';

/** What slotsConfirmed needs of a node: its name and a query. */
export interface SlotNode {
  name: string;
  query<R extends Record<string, unknown> = Record<string, unknown>>(
    sql: string,
    params?: unknown[],
  ): Promise<R[]>;
}

/**
 * Waits until every edge has applied everything its source wrote: each node's WAL position
 * is captured, then every slot on it whose name starts with `prefix` (LIKE, escaped) must
 * confirm at least that far (an edge confirms only what is durable on its target). Done
 * twice, because applying writes WAL on the targets that their own slots must pass as well.
 * A timeout names the slots still behind, with position and activity.
 */
export async function slotsConfirmed(
  nodes: readonly SlotNode[],
  opts: { prefix: string; timeoutMs?: number },
): Promise<void> {
  for (let round = 0; round < 2; round++) {
    const marks = new Map<string, string>();
    for (const n of nodes) {
      const r = await n.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
      marks.set(n.name, r[0]?.lsn as string);
    }
    for (const n of nodes) {
      await eventually(
        `slots on ${n.name} to confirm ${marks.get(n.name)}`,
        () =>
          n.query<{ slot: string; confirmed: string | null; active: boolean }>(
            `SELECT slot_name AS slot, confirmed_flush_lsn::text AS confirmed, active FROM pg_replication_slots
              WHERE slot_name LIKE $2 || '%' AND (confirmed_flush_lsn IS NULL OR confirmed_flush_lsn < $1::pg_lsn)`,
            [marks.get(n.name), opts.prefix],
          ),
        (r) => r.length === 0,
        { timeoutMs: opts.timeoutMs ?? 30_000, intervalMs: 100 },
      );
    }
  }
}
