import type { Lsn } from '@pgfleet/wal';
import { type ChangeSpans, COL_TEXT, COL_UNCHANGED_TOAST, type TupleSpans } from '../decode/change-reader.js';
import { type GroupShape, groupColumns } from './group-sql.js';
import type { ApplyTable } from './statements.js';
import { OID } from './wire-arrays.js';

/** A relation as the applier knows it: `version` changes with every Relation message for its id. */
export interface ApplyRelation {
  id: number;
  version: number;
  table: ApplyTable;
  /**
   * The row form of each kind of change in its usual case, computed once: an insert of every
   * column, an update of every non-key column that keeps its key, a delete.
   */
  usual?: Partial<Record<ChangeSpans['kind'], RowForm>>;
}

/** The columns a change sets, and what a group of such changes is keyed by. */
interface RowForm {
  setIndexes: number[];
  shapeKey: string;
  /** Parameters per row (groupColumns). */
  width: number;
}

function rowForm(rel: ApplyRelation, kind: ChangeSpans['kind'], setIndexes: number[]): RowForm {
  const shapeKey = `${rel.id}.${rel.version}:${kind[0]}:${kind === 'insert' ? '' : setIndexes.join(',')}`;
  return { setIndexes, shapeKey, width: groupColumns({ table: rel.table, kind, setIndexes }).length };
}

function usualForm(rel: ApplyRelation, kind: ChangeSpans['kind']): RowForm {
  rel.usual ??= {};
  const known = rel.usual[kind];
  if (known) return known;
  const t = rel.table;
  const all = t.columns.map((_, i) => i);
  const set = kind === 'insert' ? all : kind === 'update' ? all.filter((i) => !t.columns[i]?.isKey) : [];
  const form = rowForm(rel, kind, set);
  rel.usual[kind] = form;
  return form;
}

/** Beyond this many keys a group looks keys up in a set rather than its list. */
const KEY_LIST_MAX = 16;

/**
 * Rows of one transaction that one set-based statement applies: consecutive changes of one
 * table, one kind and the same columns, never two of one key (a second change of a key
 * must see the first, so it starts a new group), at most `maxRows` of them. The values
 * live in the transaction's buffer, consecutive (only the last group takes rows): the bytes
 * `start`..`end`, row after row, each row its parameters in order, each value a binary
 * array element (int32 length, -1 for NULL, then the text bytes).
 */
export class TxGroup {
  rows = 0;
  /** Offset just past the group's last value. */
  end: number;
  /** Some value of the group is NULL. */
  hasNull = false;
  /** Keys (old, and new when an update changes it) of an update or delete group; a set once many. */
  private readonly keyList: string[] = [];
  private keySet: Set<string> | null = null;

  constructor(
    readonly shape: GroupShape,
    readonly shapeKey: string,
    readonly width: number,
    /** Offset of the group's first value in the transaction's buffer. */
    public start: number,
  ) {
    this.end = start;
  }

  /** Whether a change with these keys may join the group. */
  accepts(shapeKey: string, keys: readonly string[], maxRows: number): boolean {
    if (shapeKey !== this.shapeKey || this.rows >= maxRows) return false;
    for (const k of keys) if (this.keySet ? this.keySet.has(k) : this.keyList.includes(k)) return false;
    return true;
  }

  addKeys(keys: readonly string[]): void {
    if (this.keySet) {
      for (const k of keys) this.keySet.add(k);
      return;
    }
    this.keyList.push(...keys);
    if (this.keyList.length > KEY_LIST_MAX) this.keySet = new Set(this.keyList);
  }
}

/**
 * Copies `n` bytes of `src` from `from` into `dst` at `to` and returns `n`. Values are mostly
 * a few bytes: Buffer#copy validates its arguments and makes a view object per call, which
 * costs more than such a copy (a sixth of the replicator's own time on TPC-B), so
 * short runs are copied byte by byte.
 */
function copyBytes(src: Buffer, from: number, dst: Buffer, to: number, n: number): number {
  if (n > 64) return src.copy(dst, to, from, from + n);
  for (let k = 0; k < n; k++) dst[to + k] = src[from + k] as number;
  return n;
}

function keyString(buf: Buffer, spans: TupleSpans, keyIndexes: readonly number[]): string {
  if (keyIndexes.length === 1) return spans.keyText(buf, keyIndexes[0] as number);
  return keyIndexes.map((i) => spans.keyText(buf, i)).join('\u0000,');
}

/** The buffer of a transaction with no values yet (most echoes never get one). */
const NO_DATA = Buffer.alloc(0);

/** A source transaction being received, grouped for set-based apply. */
export class PendingTx {
  groups: TxGroup[] = [];
  rows = 0;
  bytes = 0;
  /** Every group's values, copied out of the stream's messages. */
  data: Buffer;
  private used = 0;

  constructor(
    readonly finalLsn: Lsn,
    readonly commitTs: bigint,
    readonly xid: number,
    /** SeenTracker version at the transaction's start. */
    readonly seenVersion: number,
  ) {
    this.data = NO_DATA;
  }

  private room(n: number): void {
    if (this.used + n <= this.data.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.data.length * 2, this.used + n, 256));
    this.data.copy(next, 0, 0, this.used);
    this.data = next;
  }

  private put(g: TxGroup, buf: Buffer, spans: TupleSpans, i: number): void {
    if (spans.kinds[i] === COL_TEXT) {
      const at = spans.at[i] as number;
      const n = 4 + buf.readInt32BE(at);
      this.room(n);
      this.used += copyBytes(buf, at, this.data, this.used, n);
    } else {
      this.room(4);
      this.used = this.data.writeInt32BE(-1, this.used);
      g.hasNull = true;
    }
  }

  /**
   * Drops every group but `keep` (streamed transactions send groups as they fill), and the
   * values of the dropped ones, so a large transaction holds at most a group at a time.
   */
  keepOnly(keep: TxGroup | undefined): void {
    this.groups = keep ? [keep] : [];
    if (!keep) {
      this.used = 0;
      return;
    }
    const from = keep.start;
    this.data.copy(this.data, 0, from, this.used);
    this.used -= from;
    keep.start = 0;
    keep.end -= from;
  }

  /** Appends one change; its values are copied out of `buf`, which may be reused afterwards. */
  add(rel: ApplyRelation, c: ChangeSpans, buf: Buffer, maxGroupRows: number): void {
    const t = rel.table;
    let form: RowForm;
    let keySource: TupleSpans;
    const keys: string[] = [];
    if (c.kind === 'insert') {
      form = usualForm(rel, 'insert');
      keySource = c.new as TupleSpans;
    } else if (c.kind === 'update') {
      const neu = c.new as TupleSpans;
      keySource = c.old ?? neu;
      const changed =
        c.old !== null &&
        t.keyIndexes.some(
          (i) => neu.kinds[i] !== COL_UNCHANGED_TOAST && !neu.sameValue(buf, i, c.old as TupleSpans),
        );
      let toast = false;
      for (let i = 0; i < neu.n && !toast; i++) toast = neu.kinds[i] === COL_UNCHANGED_TOAST;
      if (!changed && !toast && neu.n === t.columns.length) form = usualForm(rel, 'update');
      else {
        const setIndexes: number[] = [];
        for (let i = 0; i < neu.n; i++) {
          if (neu.kinds[i] === COL_UNCHANGED_TOAST) continue;
          if (!changed && t.columns[i]?.isKey) continue;
          setIndexes.push(i);
        }
        form = rowForm(rel, 'update', setIndexes);
      }
      keys.push(keyString(buf, keySource, t.keyIndexes));
      if (changed) keys.push(keyString(buf, neu, t.keyIndexes));
    } else {
      form = usualForm(rel, 'delete');
      keySource = c.old as TupleSpans;
      keys.push(keyString(buf, keySource, t.keyIndexes));
    }
    let g = this.groups[this.groups.length - 1];
    if (!g?.accepts(form.shapeKey, keys, maxGroupRows)) {
      g = new TxGroup(
        { table: t, kind: c.kind, setIndexes: form.setIndexes },
        form.shapeKey,
        form.width,
        this.used,
      );
      this.groups.push(g);
    }
    g.addKeys(keys);
    if (c.kind === 'insert') {
      for (const i of form.setIndexes) this.put(g, buf, keySource, i);
    } else {
      for (const i of t.keyIndexes) this.put(g, buf, keySource, i);
      if (c.kind === 'update') for (const i of form.setIndexes) this.put(g, buf, c.new as TupleSpans, i);
    }
    g.end = this.used;
    g.rows++;
    this.rows++;
    this.bytes += buf.length;
  }
}

/**
 * The 2-dimensional text[] parameter (binary) of a group over several transactions' rows:
 * element [r][j] is parameter j of row r, rows in order. PostgreSQL stores it row-major,
 * which is the order the values already have in each transaction's buffer (a group's rows
 * are consecutive there, each its parameters in order, each value as the binary array
 * element), so the body is one copy per transaction.
 */
export function rowMatrix(parts: ReadonlyArray<{ tx: PendingTx; g: TxGroup }>, width: number): Buffer {
  let size = 28;
  let rows = 0;
  let nulls = false;
  for (const { g } of parts) {
    rows += g.rows;
    size += g.end - g.start;
    nulls ||= g.hasNull;
  }
  if (rows === 0 || width === 0) {
    const b = Buffer.allocUnsafe(12);
    b.writeInt32BE(0, 0);
    b.writeInt32BE(0, 4);
    b.writeInt32BE(OID.text, 8);
    return b;
  }
  const out = Buffer.allocUnsafe(size);
  out.writeInt32BE(2, 0);
  out.writeInt32BE(nulls ? 1 : 0, 4);
  out.writeInt32BE(OID.text, 8);
  out.writeInt32BE(rows, 12);
  out.writeInt32BE(1, 16);
  out.writeInt32BE(width, 20);
  out.writeInt32BE(1, 24);
  let o = 28;
  for (const { tx, g } of parts) o += copyBytes(tx.data, g.start, out, o, g.end - g.start);
  return out;
}
