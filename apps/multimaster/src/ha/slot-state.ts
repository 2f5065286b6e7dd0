import type pg from 'pg';

/**
 * State of a slot re-created after a failover, as recorded on the source: 'pending' while
 * its peer still lacks the window before it, 'done' after; null when it never was (or the
 * mesh predates pgfleet.slot_resync).
 */
export async function slotResyncState(client: pg.Client, slot: string): Promise<string | null> {
  const { rows: t } = await client.query(`SELECT to_regclass('pgfleet.slot_resync') IS NOT NULL AS present`);
  if (!t[0]?.present) return null;
  const { rows } = await client.query('SELECT state FROM pgfleet.slot_resync WHERE slot = $1', [slot]);
  return (rows[0]?.state as string | undefined) ?? null;
}
