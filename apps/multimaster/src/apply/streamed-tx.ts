import { classifyDriverError } from '@pgfleet/connection';
import { formatLsn, type Lsn } from '@pgfleet/wal';
import { formatPgTimestamp } from '../pg-time.js';
import type { ApplyConnection } from './apply-connection.js';
import { originParams, type SessionParams, timestamptzParam } from './batch.js';
import type { ApplierFailure } from './failure.js';
import type { ConflictSqlContext, GroupShape } from './group-sql.js';
import type { CommitLedger } from './ledger.js';
import { persistSeenSql } from './shape-sql.js';
import { type ApplyTable, commitStatement, lastCommand, truncateStatement } from './statements.js';
import { type PendingTx, rowMatrix, type TxGroup } from './tx-builder.js';
import { timestampMatrix } from './wire-arrays.js';

const IN_FAILED_SQL_TRANSACTION = '25P02';

export interface StreamedContext {
  conn: ApplyConnection;
  ledger: CommitLedger;
  session(): SessionParams;
  conflictContext(g: GroupShape): ConflictSqlContext;
  edgeId: string;
  /** The edge's replication origin (each commit leaves its witness, progress-mark.ts). */
  origin: string;
  fail(f: ApplierFailure): void;
}

/**
 * A source transaction applied statement by statement as it arrives (too large to hold, or
 * with a TRUNCATE): BEGIN, the guard, one group function call per group of rows, and the
 * commit with the source's end LSN and commit time, all pipelined. A statement that fails
 * aborts the transaction; its COMMIT then answers ROLLBACK and the transaction is replayed
 * change by change.
 */
export class StreamedTx {
  private error: Error | null = null;

  constructor(
    private readonly c: StreamedContext,
    readonly tx: PendingTx,
    expected: Lsn,
    private readonly seen: ReadonlyArray<bigint | null>,
    private readonly persist: string | null,
  ) {
    this.watch(c.conn.send('BEGIN'));
    this.watch(c.conn.send('SELECT pgfleet.apply_guard($1::pg_lsn)', [formatLsn(expected)], 'pgfleet_guard'));
  }

  private watch(p: Promise<unknown>): void {
    p.catch((err: Error) => {
      const k = classifyDriverError(err);
      if (k.kind === 'connection') this.c.fail({ kind: 'retry', error: err });
      else if (!(k.kind === 'server' && k.sqlState === IN_FAILED_SQL_TRANSACTION)) this.error ??= err;
    });
  }

  /** Applies a group of rows (its function is created on first use). */
  group(g: TxGroup): void {
    const fn = this.c.conn.groupFunction(g.shapeKey, g.shape, this.c.conflictContext(g.shape));
    const s = this.c.session();
    const values: unknown[] = [
      timestamptzParam(this.tx.commitTs),
      formatLsn(this.tx.finalLsn),
      String(this.tx.xid),
      timestampMatrix([this.seen], Math.max(1, this.seen.length)),
      timestamptzParam(s.floor),
      ...originParams(s),
      rowMatrix([{ tx: this.tx, g }], g.width),
    ];
    this.watch(this.c.conn.send(fn.call, values, fn.name));
  }

  truncate(tables: ApplyTable[], opts: { cascade: boolean; restartIdentity: boolean }): void {
    this.watch(this.c.conn.send(truncateStatement(tables, opts)));
  }

  /** Records the seen vector if it changed, sets origin progress and commits. */
  commit(endLsn: Lsn): void {
    if (this.persist !== null) this.watch(this.c.conn.send(persistSeenSql(this.c.edgeId), [this.persist]));
    this.c.ledger.sent(endLsn, this.tx.commitTs, this.tx.rows);
    const commit = commitStatement(this.c.origin, formatLsn(endLsn), formatPgTimestamp(this.tx.commitTs));
    this.c.conn.send(commit).then(
      (r) => {
        if (lastCommand(r) === 'COMMIT') this.c.ledger.confirmThrough(endLsn);
        else
          this.c.fail({
            kind: 'replay',
            commitLsn: this.tx.finalLsn,
            error: this.error ?? new Error(`transaction ${formatLsn(this.tx.finalLsn)} rolled back`),
          });
      },
      (err: Error) =>
        this.c.fail(
          classifyDriverError(err).kind === 'server'
            ? { kind: 'replay', commitLsn: this.tx.finalLsn, error: this.error ?? err }
            : { kind: 'retry', error: err },
        ),
    );
  }
}
