import { formatLsn, type Lsn } from '@pgfleet/wal';
import type { DeadLetterPolicy } from '../config.js';
import type { DeleteMessage, InsertMessage, UpdateMessage } from '../decode/messages.js';
import type { Edge } from '../naming.js';
import { formatPgTimestamp } from '../pg-time.js';
import type { ApplyTable } from './statements.js';
import { oldObject, tupleObject } from './tuples.js';

/** One pgfleet.dead_letters row: a transaction (or, under `discard`, one change) not applied. */
export interface DeadLetterRow {
  commitLsn: Lsn;
  endLsn: Lsn;
  xid: number;
  commitTs: bigint;
  /** Table of the change that failed, if one did. */
  table: { schema: string; name: string } | null;
  changeKind: string | null;
  /** The change that failed, as JSON (see changeImage), if one did. */
  change: Record<string, unknown> | null;
  sqlState: string | null;
  error: string;
  /** `pause`, `skip_change`, `skip_transaction`, `skipped_by_operator`. */
  action: string;
}

/** One pgfleet.dead_letter_changes row: a change exactly as the source sent it. */
export interface RecordedChange {
  schema: string | null;
  table: string | null;
  kind: 'insert' | 'update' | 'delete' | 'truncate';
  old: Record<string, unknown> | null;
  new: Record<string, unknown> | null;
}

export function recordedChange(
  t: ApplyTable,
  msg: InsertMessage | UpdateMessage | DeleteMessage,
): RecordedChange {
  return {
    schema: t.schema,
    table: t.name,
    kind: msg.tag,
    old: msg.tag === 'insert' ? null : oldObject(t, msg),
    new: msg.tag === 'delete' ? null : tupleObject(t, msg.newTuple),
  };
}

export function recordedTruncate(
  tables: ApplyTable[],
  opts: { cascade: boolean; restartIdentity: boolean },
): RecordedChange {
  return {
    schema: null,
    table: null,
    kind: 'truncate',
    old: null,
    new: {
      relations: tables.map((t) => ({ schema: t.schema, name: t.name })),
      cascade: opts.cascade,
      restartIdentity: opts.restartIdentity,
    },
  };
}

export const DEAD_LETTER_INSERT_SQL = `INSERT INTO pgfleet.dead_letters (edge, source_node, target_node, commit_lsn, end_lsn, xid, commit_ts, table_schema, table_name, change_kind, change, sqlstate, error, policy, action)
   VALUES ($1, $2, $3, $4::pg_lsn, $5::pg_lsn, $6, $7::timestamptz, $8, $9, $10, $11::jsonb, $12, $13, $14, $15) RETURNING id::text AS id`;

export function deadLetterValues(edge: Edge, r: DeadLetterRow, policy: DeadLetterPolicy): unknown[] {
  return [
    edge.id,
    edge.source,
    edge.target,
    formatLsn(r.commitLsn),
    formatLsn(r.endLsn),
    r.xid,
    formatPgTimestamp(r.commitTs),
    r.table?.schema ?? null,
    r.table?.name ?? null,
    r.changeKind,
    r.change === null ? null : JSON.stringify(r.change),
    r.sqlState,
    r.error,
    policy,
    r.action,
  ];
}

/**
 * Marks the `pause` dead letter of a transaction as no longer standing: `applied` once the
 * edge applied it, `skipped` once an operator skipped it (then recorded anew).
 */
export const RESOLVE_PAUSED_SQL = `UPDATE pgfleet.dead_letters SET resolved = $3, resolved_at = clock_timestamp()
   WHERE edge = $1 AND commit_lsn = $2::pg_lsn AND action = 'pause' AND resolved IS NULL`;

const INSERT_CHANGES_SQL = `INSERT INTO pgfleet.dead_letter_changes (dead_letter_id, seq, table_schema, table_name, kind, old, new)
   SELECT $1::int8, u.seq, u.s, u.t, u.k, u.o, u.n
     FROM unnest($2::int[], $3::text[], $4::text[], $5::text[], $6::jsonb[], $7::jsonb[]) AS u(seq, s, t, k, o, n)`;

/** Changes held before they are written: bounded by count and by their JSON size. */
const FLUSH_CHANGES = 500;
const FLUSH_BYTES = 4 << 20;

interface Db {
  query(text: string, values?: unknown[]): Promise<{ rows: Array<Record<string, unknown>> }>;
}

/**
 * Records a dead letter and every change of its transaction, as they stream by, with
 * bounded memory: begin() writes the transaction's row, add() each change, finish() the
 * count. Runs inside the apply transaction that also records the transaction's origin
 * progress, so a transaction is either recorded whole and skipped, or neither.
 */
export class DeadLetterRecorder {
  private id: string | null = null;
  private seq = 0;
  private buffer: Array<{ seq: number; c: RecordedChange; o: string | null; n: string | null }> = [];
  private bytes = 0;

  constructor(
    private readonly db: Db,
    private readonly edge: Edge,
    private readonly policy: DeadLetterPolicy,
  ) {}

  async begin(row: DeadLetterRow): Promise<void> {
    const { rows } = await this.db.query(
      DEAD_LETTER_INSERT_SQL,
      deadLetterValues(this.edge, row, this.policy),
    );
    this.id = rows[0]?.id as string;
  }

  async add(c: RecordedChange): Promise<void> {
    const o = c.old === null ? null : JSON.stringify(c.old);
    const n = c.new === null ? null : JSON.stringify(c.new);
    this.buffer.push({ seq: ++this.seq, c, o, n });
    this.bytes += (o?.length ?? 0) + (n?.length ?? 0);
    if (this.buffer.length >= FLUSH_CHANGES || this.bytes >= FLUSH_BYTES) await this.flush();
  }

  /** Writes what is held, the change count and the transaction's end LSN; returns the dead letter's id. */
  async finish(endLsn: Lsn): Promise<string> {
    await this.flush();
    await this.db.query(
      'UPDATE pgfleet.dead_letters SET changes = $2, end_lsn = $3::pg_lsn WHERE id = $1::int8',
      [this.id, this.seq, formatLsn(endLsn)],
    );
    return this.id as string;
  }

  private async flush(): Promise<void> {
    if (this.buffer.length === 0) return;
    if (this.id === null) throw new Error('DeadLetterRecorder.add before begin');
    const b = this.buffer;
    this.buffer = [];
    this.bytes = 0;
    await this.db.query(INSERT_CHANGES_SQL, [
      this.id,
      b.map((x) => x.seq),
      b.map((x) => x.c.schema),
      b.map((x) => x.c.table),
      b.map((x) => x.c.kind),
      b.map((x) => x.o),
      b.map((x) => x.n),
    ]);
  }
}
