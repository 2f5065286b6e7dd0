import { connect, toPgfleetError } from '@pgfleet/connection';
import type { ResolvedConfig } from '../config.js';
import { VALUE_TEXT_SETTINGS } from '../session-settings.js';

/** One pgfleet.dead_letters row of one node. */
export interface DeadLetterEntry {
  /** `node:id`: what `dead-letters --replay` takes. */
  ref: string;
  node: string;
  id: string;
  recordedAt: string;
  edge: string;
  commitLsn: string;
  endLsn: string;
  xid: string;
  commitTs: string;
  /** `pause` (the edge waits on it), `skip_change`, `skip_transaction`, `skipped_by_operator`. */
  action: string;
  /** Changes recorded with it (every change of a skipped transaction). */
  changes: number;
  /** null while it stands; `applied`, `skipped` or `replayed` once it no longer does. */
  resolved: string | null;
  table: string | null;
  sqlState: string | null;
  error: string;
  /** The change that failed, as recorded. */
  failedChange: unknown;
}

export interface ListDeadLettersOptions {
  node?: string;
  /** Include resolved ones (default: only those that still stand). */
  all?: boolean;
  /** Most rows per node, newest first (default 50). */
  limit?: number;
}

export interface NodeDeadLetters {
  node: string;
  entries: DeadLetterEntry[];
  /** Why this node could not be read (never holds a password). */
  error?: string;
}

/** Dead letters of every node (or one), newest first. */
export async function listDeadLetters(
  config: ResolvedConfig,
  opts: ListDeadLettersOptions = {},
): Promise<NodeDeadLetters[]> {
  const nodes = config.nodes.filter((n) => !opts.node || n.name === opts.node);
  return Promise.all(
    nodes.map(async (n): Promise<NodeDeadLetters> => {
      try {
        const c = await connect(n.conninfo, {
          connectTimeoutMs: 5000,
          applicationName: 'pgfleet-mm:dead-letters',
          settings: VALUE_TEXT_SETTINGS,
        });
        try {
          const { rows } = await c.query(
            `SELECT id::text, recorded_at::text, edge, commit_lsn::text, end_lsn::text, xid::text, commit_ts::text,
                    action, changes, resolved, CASE WHEN table_name IS NULL THEN NULL ELSE table_schema || '.' || table_name END AS tbl,
                    sqlstate, error, change
               FROM pgfleet.dead_letters WHERE $1 OR resolved IS NULL ORDER BY id DESC LIMIT $2`,
            [opts.all === true, opts.limit ?? 50],
          );
          return {
            node: n.name,
            entries: rows.map((r) => ({
              ref: `${n.name}:${r.id}`,
              node: n.name,
              id: r.id,
              recordedAt: r.recorded_at,
              edge: r.edge,
              commitLsn: r.commit_lsn,
              endLsn: r.end_lsn,
              xid: r.xid,
              commitTs: r.commit_ts,
              action: r.action,
              changes: r.changes,
              resolved: r.resolved,
              table: r.tbl,
              sqlState: r.sqlstate,
              error: r.error,
              failedChange: r.change,
            })),
          };
        } finally {
          await c.end().catch(() => {});
        }
      } catch (err) {
        return { node: n.name, entries: [], error: toPgfleetError(err, { node: n.name }).message };
      }
    }),
  );
}
