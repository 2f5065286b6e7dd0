import { quoteQualified } from '@pgfleet/connection';
import { formatLsn, type Lsn } from '@pgfleet/wal';
import type { GroupShape } from './group-sql.js';
import type { TxShape } from './shape-sql.js';
import { type PendingTx, rowMatrix, type TxGroup } from './tx-builder.js';
import { fixedArray, intMatrix, OID, stringArray, timestampMatrix } from './wire-arrays.js';

/** A committed source transaction ready to apply: its rows, and what it was judged against. */
export interface ReadyTx {
  tx: PendingTx;
  endLsn: Lsn;
  /** Seen times by origin id (SeenTracker.vector), shared by transactions with no echo between them. */
  seen: ReadonlyArray<bigint | null>;
  /** pgfleet.edge_seen document to record with this transaction, when it changed. */
  persist: string | null;
}

/** What every call of the session needs besides its transactions (origin ids are the target's). */
export interface SessionParams {
  /** µs since 2000: the target's join to the mesh. */
  floor: bigint;
  /** Rank of the node behind each origin id from 0 (the target), null if none. */
  rank: ReadonlyArray<number | null>;
  /** Name of each origin id from 0, for pgfleet.conflicts (`local:<target>` for 0). */
  originName: ReadonlyArray<string | null>;
}

/** PostgreSQL's binary timestamptz of µs since 2000 (integer datetimes). */
export function timestamptzParam(us: bigint): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeBigInt64BE(us);
  return b;
}

/** The int8[] / text[] of rank and name by origin id, lower bound 0. */
export function originParams(s: SessionParams): [Buffer, Buffer] {
  return [
    fixedArray(
      OID.int8,
      s.rank.map((r) => (r === null ? null : BigInt(r))),
      0,
    ),
    stringArray([...s.originName], OID.text, 0),
  ];
}

const tableKeys = new WeakMap<{ schema: string; name: string }, string>();

/** A table's name as the batcher keeps it (tables whose inserts meet existing keys), computed once per table object. */
export function tableKey(t: { schema: string; name: string }): string {
  let k = tableKeys.get(t);
  if (k === undefined) {
    k = quoteQualified(t.schema, t.name);
    tableKeys.set(t, k);
  }
  return k;
}

/**
 * The shape of transactions with these groups (each its tx-builder shapeKey and shape;
 * `single(i)`: group i has one row per transaction), and its key: transactions with equal
 * keys run through one procedure. A single-row insert is plain unless its table is in
 * `keysExist`.
 */
function keyedShape(
  groups: ReadonlyArray<{ shapeKey: string; shape: GroupShape }>,
  single: (i: number) => boolean,
  persists: boolean,
  keysExist: ReadonlySet<string>,
): { key: string; shape: TxShape } {
  let key = '';
  const shapeGroups = groups.map((g, i) => {
    const one = single(i);
    const plainInsert =
      one && g.shape.kind === 'insert' && (keysExist.size === 0 || !keysExist.has(tableKey(g.shape.table)));
    key += `${i === 0 ? '' : '|'}${g.shapeKey}#${one ? (plainInsert ? 'p' : 1) : 'n'}`;
    return { shape: g.shape, single: one, plainInsert };
  });
  if (persists) key += '|P';
  return { key, shape: { groups: shapeGroups, persists } };
}

/** The shape a transaction is applied with, and its key (keyedShape). */
export function txShape(r: ReadyTx, keysExist: ReadonlySet<string>): { key: string; shape: TxShape } {
  const groups = r.tx.groups;
  return keyedShape(groups, (i) => (groups[i] as TxGroup).rows === 1, r.persist !== null, keysExist);
}

/**
 * A run of committed transactions of one shape, applied by one CALL of the shape's
 * procedure (each still its own target transaction).
 */
export class TxBatch {
  readonly txs: ReadyTx[] = [];
  rows = 0;

  constructor(
    readonly shapeKey: string,
    readonly shape: TxShape,
    /** Origin progress before the first transaction: the call's guard. */
    readonly expected: Lsn,
  ) {}

  add(r: ReadyTx): void {
    this.txs.push(r);
    this.rows += r.tx.rows;
  }

  /**
   * The run as its call is sent: its parameters, and what sending it again takes. The
   * decoded transactions are not kept (they are garbage once the parameters are built).
   */
  sent(session: SessionParams): SentRun {
    const n = this.txs.length;
    const ends = new BigUint64Array(n);
    const finals = new BigUint64Array(n);
    for (let i = 0; i < n; i++) {
      const r = this.txs[i] as ReadyTx;
      ends[i] = r.endLsn;
      finals[i] = r.tx.finalLsn;
    }
    const groupKeys = (this.txs[0] as ReadyTx).tx.groups.map((g) => g.shapeKey);
    return new SentRun(
      this.shapeKey,
      this.shape,
      groupKeys,
      ends,
      finals,
      this.params(session),
      0,
      this.expected,
    );
  }

  /** Parameters of the CALL, in procedureSql's order. */
  private params(session: SessionParams): unknown[] {
    const txs = this.txs;
    const vectors: Array<ReadonlyArray<bigint | null>> = [];
    const sv: number[] = [];
    for (const r of txs) {
      let k = vectors.indexOf(r.seen);
      if (k < 0) k = vectors.push(r.seen) - 1;
      sv.push(k + 1);
    }
    const width = Math.max(1, ...vectors.map((v) => v.length));
    const out: unknown[] = [
      formatLsn(this.expected),
      1, // p_from
      fixedArray(
        OID.pg_lsn,
        txs.map((r) => r.endLsn),
      ),
      fixedArray(
        OID.timestamptz,
        txs.map((r) => r.tx.commitTs),
      ),
      fixedArray(
        OID.pg_lsn,
        txs.map((r) => r.tx.finalLsn),
      ),
      fixedArray(
        OID.int8,
        txs.map((r) => BigInt(r.tx.xid)),
      ),
      fixedArray(OID.int4, sv),
      timestampMatrix(vectors, width),
      stringArray(
        txs.map((r) => r.persist),
        OID.jsonb,
      ),
      timestamptzParam(session.floor),
      ...originParams(session),
    ];
    this.shape.groups.forEach((sg, g) => {
      if (!sg.single) {
        const lo: number[] = [];
        const hi: number[] = [];
        let next = 1;
        for (const r of txs) {
          const rows = r.tx.groups[g]?.rows ?? 0;
          lo.push(next);
          hi.push(next + rows - 1);
          next += rows;
        }
        out.push(intMatrix([lo, hi]));
      }
      const parts = txs.map((r) => ({ tx: r.tx, g: r.tx.groups[g] as TxGroup }));
      out.push(rowMatrix(parts, parts[0]?.g.width ?? 0));
    });
    return out;
  }
}

/**
 * A run whose call was sent, as long as the call has not returned: enough to send it again
 * from any of its transactions under other keys (batcher.ts, after a single-row insert met
 * an existing key), and nothing of the decoded transactions.
 */
export class SentRun {
  constructor(
    readonly shapeKey: string,
    readonly shape: TxShape,
    /** Each group's tx-builder shapeKey (its shape is in `shape`), to key the shape again. */
    private readonly groupKeys: readonly string[],
    /** End LSN of each transaction of the run. */
    private readonly ends: BigUint64Array,
    /** Commit LSN of each transaction of the run. */
    private readonly finals: BigUint64Array,
    /** The CALL's parameters (procedureSql's order): p_expected and p_from name where it starts. */
    readonly params: readonly unknown[],
    /** Index of the first transaction the call applies. */
    readonly from: number,
    /** Origin progress before that transaction: the call's guard. */
    readonly expected: Lsn,
  ) {}

  /** Transactions the call applies. */
  get size(): number {
    return this.ends.length - this.from;
  }

  /** End LSN of the run's last transaction. */
  get lastEnd(): Lsn {
    return this.ends[this.ends.length - 1] as Lsn;
  }

  /** Index of the first transaction the call applies that ends past `progress`, or -1. */
  firstPast(progress: Lsn): number {
    for (let i = this.from; i < this.ends.length; i++) if ((this.ends[i] as bigint) > progress) return i;
    return -1;
  }

  commitLsn(i: number): Lsn {
    return this.finals[i] as Lsn;
  }

  /** Tables of the run's plain single-row inserts. */
  plainInsertTables(): string[] {
    return this.shape.groups.filter((g) => g.plainInsert === true).map((g) => tableKey(g.shape.table));
  }

  /**
   * The run from transaction `from` on, keyed under `keysExist` (its parameters are the
   * same: a plain insert and one with ON CONFLICT take the same values).
   */
  again(from: number, keysExist: ReadonlySet<string>): SentRun {
    const groups = this.shape.groups.map((g, i) => ({
      shapeKey: this.groupKeys[i] as string,
      shape: g.shape,
    }));
    const single = (i: number) => this.shape.groups[i]?.single === true;
    const { key, shape } = keyedShape(groups, single, this.shape.persists, keysExist);
    const expected = from > this.from ? (this.ends[from - 1] as Lsn) : this.expected;
    const params = [formatLsn(expected), from + 1, ...this.params.slice(2)];
    return new SentRun(key, shape, this.groupKeys, this.ends, this.finals, params, from, expected);
  }
}
