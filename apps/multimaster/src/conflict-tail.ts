import type pg from 'pg';
import type { Logger } from 'pino';
import type { ConflictKind, RecordedConflict, Resolution } from './conflict.js';

/** Conflicts are read in pages of this many rows (a burst is read whole, page by page). */
const TAIL_PAGE = 5000;

/**
 * Reports an edge's conflicts from the table they are recorded in: the apply writes each
 * conflict into pgfleet.conflicts in the transaction that resolved it, and the edge reads
 * the rows committed since it last looked (on its control connection, from its status
 * tick) to log and count them. So only committed conflicts are reported, each once, and the
 * apply session sends nothing per conflict (a notice is one socket write at once).
 *
 * Rows are read past the highest id seen. One edge's rows come from its one apply session
 * (and, under policy error, from its control connection while the apply waits), so their
 * ids follow commit order and none is passed over. The dead-letter replay records conflicts
 * from another process and reports them itself; a row of it may be logged here as well, or
 * passed over when it commits behind a higher id already read (the table stays the record).
 */
export class ConflictTail {
  /** Highest id reported; null until start() read where the table ends. */
  private through: string | null = null;

  constructor(
    private readonly edgeId: string,
    private readonly logger: Logger,
    private readonly report: (c: RecordedConflict) => void,
  ) {}

  /** Starts after the rows already recorded; later calls (a new session) keep the position. */
  async start(db: pg.Client): Promise<void> {
    if (this.through !== null) return;
    const { rows } = await db.query(
      'SELECT coalesce(max(id), 0)::text AS id FROM pgfleet.conflicts WHERE edge = $1',
      [this.edgeId],
    );
    this.through = rows[0].id;
  }

  /** Logs and reports the conflicts committed since the last call, in order; how many. */
  async read(db: pg.Client): Promise<number> {
    let n = 0;
    for (;;) {
      const page = await this.readPage(db);
      n += page;
      if (page < TAIL_PAGE) return n;
    }
  }

  private async readPage(db: pg.Client): Promise<number> {
    if (this.through === null) return 0;
    const { rows } = await db.query<{
      id: string;
      table: string;
      kind: ConflictKind;
      resolution: Resolution;
      reason: string;
    }>(
      `SELECT c.id::text AS id, c.table_schema || '.' || c.table_name AS table, c.kind, c.resolution, c.reason
         FROM pgfleet.conflicts c WHERE c.id > $1::int8 AND c.edge = $2 ORDER BY c.id LIMIT ${TAIL_PAGE}`,
      [this.through, this.edgeId],
    );
    for (const r of rows) {
      const c = { table: r.table, kind: r.kind, resolution: r.resolution, reason: r.reason };
      this.logger.info(c, 'conflict');
      this.report(c);
      this.through = r.id;
    }
    return rows.length;
  }
}
