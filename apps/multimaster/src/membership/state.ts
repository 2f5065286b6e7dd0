import type { Queryable } from '@pgfleet/connection';

/**
 * Join state kept on the joining node itself (schema `pgfleet`, never published). Row
 * `copying` is committed before the copy starts, so a later run knows the rows it finds
 * are its own half-finished copy; `joined` commits together with the origin positions.
 */
export const MEMBERSHIP_DDL = `CREATE TABLE IF NOT EXISTS pgfleet.membership (
  node text PRIMARY KEY,
  state text NOT NULL CHECK (state IN ('copying', 'joined')),
  source text NOT NULL,
  snapshot_lsn pg_lsn,
  origins jsonb NOT NULL DEFAULT '{}',
  started_at timestamptz NOT NULL DEFAULT now(),
  joined_at timestamptz)`;

export interface JoinState {
  state: 'copying' | 'joined';
  source: string;
}

/** The join state of `node` on its own server, or null when it never started joining. */
export async function readJoinState(q: Queryable, node: string): Promise<JoinState | null> {
  const { rows } = await q.query(`SELECT to_regclass('pgfleet.membership') IS NOT NULL AS present`);
  if (!rows[0]?.present) return null;
  const { rows: st } = await q.query('SELECT state, source FROM pgfleet.membership WHERE node = $1', [node]);
  return st[0] ? { state: st[0].state, source: st[0].source } : null;
}
