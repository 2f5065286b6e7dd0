import { eventually, type SandboxNode } from '@pgfleet/sandbox';
import { type ResolvedConfig, resolveConfig } from '../config.js';

/** Shared by the membership pg tests. */

/** A mesh of `nodes` replicating every table of schema app, quick to retry. */
export function meshConfig(nodes: SandboxNode[]): ResolvedConfig {
  return resolveConfig({
    nodes: nodes.map((n) => ({ name: n.name, conninfo: n.conninfo() })),
    tables: ['app.*'],
    http: { listen: false },
    statusIntervalMs: 200,
    reconnect: { baseDelayMs: 50, maxDelayMs: 500 },
  });
}

/** Every pgfleet slot on every node confirmed at least the WAL each source had written. */
export async function quiesce(nodes: SandboxNode[]): Promise<void> {
  for (let round = 0; round < 2; round++) {
    const marks = new Map<string, string>();
    for (const n of nodes) {
      const r = await n.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
      marks.set(n.name, r[0]?.lsn as string);
    }
    for (const n of nodes) {
      await eventually(
        `slots on ${n.name} to pass ${marks.get(n.name)}`,
        () =>
          n.query<{ behind: number }>(
            `SELECT count(*)::int AS behind FROM pg_replication_slots WHERE slot_name LIKE 'pgfleet\\_%'
               AND (confirmed_flush_lsn IS NULL OR confirmed_flush_lsn < $1::pg_lsn)`,
            [marks.get(n.name)],
          ),
        (r) => r[0]?.behind === 0,
        { timeoutMs: 60_000, intervalMs: 100 },
      );
    }
  }
}
