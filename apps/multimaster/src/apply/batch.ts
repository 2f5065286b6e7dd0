import { quoteQualified } from '@pgfleet/connection';
import { formatLsn, type Lsn } from '@pgfleet/wal';
import type { TxShape } from './shape-sql.js';
import { columnMatrix, type PendingTx, type TxGroup } from './tx-builder.js';
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

/** A group of one inserted row: applied as a plain INSERT unless its table is known to hold existing keys. */
export function singleInsert(g: { rows: number; shape: { kind: string } }): boolean {
  return g.rows === 1 && g.shape.kind === 'insert';
}

/**
 * The shape a transaction is applied with, and its key: transactions with equal keys run
 * through one procedure. A single-row insert is plain unless its table is in `keysExist`.
 */
export function txShape(r: ReadyTx, keysExist: ReadonlySet<string>): { key: string; shape: TxShape } {
  let key = '';
  const groups = r.tx.groups.map((g, i) => {
    const single = g.rows === 1;
    const plainInsert = singleInsert(g) && (keysExist.size === 0 || !keysExist.has(tableKey(g.shape.table)));
    key += `${i === 0 ? '' : '|'}${g.shapeKey}#${single ? (plainInsert ? 'p' : 1) : 'n'}`;
    return { shape: g.shape, single, plainInsert };
  });
  if (r.persist !== null) key += '|P';
  return { key, shape: { groups, persists: r.persist !== null } };
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

  /** Parameters of the CALL, in procedureSql's order. */
  params(session: SessionParams): unknown[] {
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
      out.push(columnMatrix(parts, parts[0]?.g.width ?? 0));
    });
    return out;
  }
}
