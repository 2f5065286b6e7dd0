import { classifyDriverError, SqlState, sqlStateOf } from '@pgfleet/connection';
import { formatLsn, type Lsn } from '@pgfleet/wal';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { DeadLetterPolicy } from '../config.js';
import { decideDeadLetter } from '../dead-letter.js';
import type { DeleteMessage, InsertMessage, TruncateMessage, UpdateMessage } from '../decode/messages.js';
import type { Edge } from '../naming.js';
import { formatPgTimestamp } from '../pg-time.js';
import { applyChangeCarefully, type CarefulApplyContext, type RemoteTransaction } from './careful-change.js';
import {
  DeadLetterRecorder,
  type DeadLetterRow,
  RESOLVE_PAUSED_SQL,
  recordedChange,
  recordedTruncate,
} from './dead-letter-recorder.js';
import { ApplyPausedError, ConflictError } from './errors.js';
import { type ApplyTable, commitStatement, lastCommand, truncateStatement } from './statements.js';
import { changeImage } from './tuples.js';

/**
 * How a transaction is applied change by change, on the client, instead of set-based:
 * - `careful`: a transaction that failed set-based (a constraint or type error, a conflict
 *   under policy `error`): each change on its own, so the one refused is found and handled
 *   by the dead-letter policy;
 * - `dead`: recorded whole as a dead letter and skipped (skip_transaction);
 * - `operator-skip`: recorded whole and skipped because `pgfleet-mm skip` asked for it.
 */
export type ClientMode = 'careful' | 'dead' | 'operator-skip';

/** skip_transaction refused a change: the transaction must be read again from its start and recorded whole. */
export class TransactionRefused extends Error {
  constructor(
    readonly row: DeadLetterRow,
    options: ErrorOptions,
  ) {
    super(row.error, options);
  }
}

const TRANSIENT_SQLSTATES = new Set<string>([
  SqlState.DEADLOCK_DETECTED,
  SqlState.SERIALIZATION_FAILURE,
  '55P03' /* lock_not_available */,
]);

export interface ClientApplyContext {
  db: pg.Client;
  edge: Edge;
  deadLetter: DeadLetterPolicy;
  careful: CarefulApplyContext;
  /** The edge paused on this transaction: once it is applied or skipped, its `pause` dead letter is resolved. */
  resolvesPause: boolean;
  recordPausedDeadLetter(row: DeadLetterRow): Promise<void>;
  logger: Logger;
}

type Change = InsertMessage | UpdateMessage | DeleteMessage | TruncateMessage;

/**
 * One source transaction applied change by change inside one target transaction that,
 * like every other, commits with the source's end LSN and commit time.
 */
export class ClientTransaction {
  private recorder: DeadLetterRecorder | null = null;
  rows = 0;

  constructor(
    private readonly c: ClientApplyContext,
    readonly tx: RemoteTransaction,
    readonly mode: ClientMode,
  ) {}

  async begin(deadLetter: DeadLetterRow | null): Promise<void> {
    const db = this.c.db;
    await db.query('BEGIN');
    if (this.mode === 'careful') {
      if (this.c.deadLetter === 'discard') await db.query('SAVEPOINT pgfleet_change');
      return;
    }
    this.recorder = new DeadLetterRecorder(db, this.c.edge, this.c.deadLetter);
    await this.recorder.begin(
      deadLetter ?? {
        commitLsn: this.tx.finalLsn,
        endLsn: this.tx.finalLsn,
        xid: this.tx.xid,
        commitTs: this.tx.commitTs,
        table: null,
        changeKind: null,
        change: null,
        sqlState: null,
        error: 'skipped by operator request',
        action: 'skipped_by_operator',
      },
    );
  }

  async change(msg: Change, tableOf: (relationId: number) => ApplyTable): Promise<void> {
    this.rows++;
    if (this.recorder) {
      if (msg.tag === 'truncate')
        await this.recorder.add(recordedTruncate(msg.relationIds.map(tableOf), msg));
      else await this.recorder.add(recordedChange(tableOf(msg.relationId), msg));
      return;
    }
    const db = this.c.db;
    try {
      if (msg.tag === 'truncate') await db.query(truncateStatement(msg.relationIds.map(tableOf), msg));
      else await applyChangeCarefully(this.c.careful, this.tx, tableOf(msg.relationId), msg);
      if (this.c.deadLetter === 'discard') {
        await db.query('RELEASE SAVEPOINT pgfleet_change');
        await db.query('SAVEPOINT pgfleet_change');
      }
    } catch (err) {
      await this.refused(err as Error, msg, tableOf);
    }
  }

  /** A change was refused: retry, skip it, skip the transaction, or pause, as the dead-letter policy says. */
  private async refused(err: Error, msg: Change, tableOf: (relationId: number) => ApplyTable): Promise<void> {
    const db = this.c.db;
    const code = sqlStateOf(err);
    const transient =
      err instanceof ConflictError
        ? false
        : classifyDriverError(err).kind !== 'server' || (code !== undefined && TRANSIENT_SQLSTATES.has(code));
    const decision = decideDeadLetter({
      policy: this.c.deadLetter,
      skipRequested: false,
      transient,
      schemaMismatch: false,
    });
    if (decision === 'retry') throw err;
    const table = msg.tag === 'truncate' ? undefined : tableOf(msg.relationId);
    const tx = this.tx;
    const row: DeadLetterRow = {
      commitLsn: tx.finalLsn,
      endLsn: tx.finalLsn,
      xid: tx.xid,
      commitTs: tx.commitTs,
      table: table ? { schema: table.schema, name: table.name } : null,
      changeKind: msg.tag,
      change: msg.tag === 'truncate' ? { relations: msg.relationIds } : changeImage(table, msg),
      sqlState: code ?? null,
      error: err.message,
      action: decision.action,
    };
    this.c.logger.warn(
      { commitLsn: formatLsn(tx.finalLsn), sqlState: code, err: err.message, action: decision.action },
      'transaction refused by target',
    );
    if (decision.action === 'skip_change') {
      await db.query('ROLLBACK TO SAVEPOINT pgfleet_change');
      const recorder = new DeadLetterRecorder(db, this.c.edge, this.c.deadLetter);
      await recorder.begin(row);
      if (msg.tag === 'truncate') await recorder.add(recordedTruncate(msg.relationIds.map(tableOf), msg));
      else if (table) await recorder.add(recordedChange(table, msg));
      await recorder.finish(tx.finalLsn);
      return;
    }
    await db.query('ROLLBACK');
    // The changes before this one were rolled back and those after it are still to come:
    // read the transaction again from its start and record every change.
    if (decision.action === 'skip_transaction') throw new TransactionRefused(row, { cause: err });
    await this.c.recordPausedDeadLetter(row);
    const edge = this.c.edge.id;
    throw new ApplyPausedError(
      `edge ${edge} paused: transaction ${formatLsn(tx.finalLsn)} (xid ${tx.xid}) failed: ${err.message}; fix the cause or run pgfleet-mm skip --edge ${edge} --lsn ${formatLsn(tx.finalLsn)}`,
      { edge, commitLsn: formatLsn(tx.finalLsn), xid: tx.xid, sqlState: code },
      { cause: err },
    );
  }

  /** Commits with the source's end LSN and commit time; what the transaction amounted to. */
  async commit(endLsn: Lsn): Promise<'applied' | 'dead_letter' | 'operator'> {
    const db = this.c.db;
    if (this.recorder) {
      await this.recorder.finish(endLsn);
      if (this.mode === 'operator-skip')
        await db.query('DELETE FROM pgfleet.skip_requests WHERE edge = $1 AND commit_lsn = $2::pg_lsn', [
          this.c.edge.id,
          formatLsn(this.tx.finalLsn),
        ]);
    } else if (this.c.deadLetter === 'discard') {
      await db.query('RELEASE SAVEPOINT pgfleet_change');
    }
    if (this.c.resolvesPause)
      await db.query(RESOLVE_PAUSED_SQL, [
        this.c.edge.id,
        formatLsn(this.tx.finalLsn),
        this.mode === 'careful' ? 'applied' : 'skipped',
      ]);
    const r = await db.query(
      commitStatement(this.c.edge.origin, formatLsn(endLsn), formatPgTimestamp(this.tx.commitTs)),
    );
    if (lastCommand(r) !== 'COMMIT')
      throw new Error(`transaction ${formatLsn(this.tx.finalLsn)} rolled back at commit`);
    return this.mode === 'careful' ? 'applied' : this.mode === 'dead' ? 'dead_letter' : 'operator';
  }
}
