import type { Lsn } from '@pgfleet/wal';
import { type ChangeSpans, COL_TEXT, COL_UNCHANGED_TOAST, type TupleSpans } from '../decode/change-reader.js';
import { type GroupShape, groupColumns } from './group-sql.js';
import type { ApplyTable } from './statements.js';
import { TextColumn } from './wire-arrays.js';

/** A relation as the applier knows it: `version` changes with every Relation message for its id. */
export interface ApplyRelation {
  id: number;
  version: number;
  table: ApplyTable;
}

/**
 * Rows of one transaction that one set-based statement applies: consecutive changes of one
 * table, one kind and the same columns, never two of one key (a second change of a key
 * must see the first, so it starts a new group), at most `maxRows` of them.
 */
export class TxGroup {
  readonly columns: TextColumn[];
  rows = 0;
  /** Keys (old, and new when an update changes it) of an update or delete group. */
  private readonly keys: Set<string> | null;

  constructor(
    readonly shape: GroupShape,
    readonly shapeKey: string,
  ) {
    this.columns = groupColumns(shape).map(() => new TextColumn(64));
    this.keys = shape.kind === 'insert' ? null : new Set();
  }

  /** Whether a change with these keys may join the group. */
  accepts(shapeKey: string, keys: readonly string[], maxRows: number): boolean {
    if (shapeKey !== this.shapeKey || this.rows >= maxRows) return false;
    if (this.keys) for (const k of keys) if (this.keys.has(k)) return false;
    return true;
  }

  addKeys(keys: readonly string[]): void {
    if (this.keys) for (const k of keys) this.keys.add(k);
  }
}

function append(c: TextColumn, buf: Buffer, spans: TupleSpans, i: number): void {
  const kind = spans.kinds[i];
  if (kind === COL_TEXT) c.addSpan(buf, spans.at[i] as number);
  else c.addNull();
}

function keyString(buf: Buffer, spans: TupleSpans, keyIndexes: readonly number[]): string {
  if (keyIndexes.length === 1) return spans.keyText(buf, keyIndexes[0] as number);
  return keyIndexes.map((i) => spans.keyText(buf, i)).join('\u0000,');
}

/** A source transaction being received, grouped for set-based apply. */
export class PendingTx {
  groups: TxGroup[] = [];
  rows = 0;
  bytes = 0;
  endLsn: Lsn | null = null;

  constructor(
    readonly finalLsn: Lsn,
    readonly commitTs: bigint,
    readonly xid: number,
    /** SeenTracker version at the transaction's start. */
    readonly seenVersion: number,
  ) {}

  /** The sequence of group shapes: transactions with equal keys share one procedure. */
  shapeKey(): string {
    return this.groups.map((g) => g.shapeKey).join('|');
  }

  /** Appends one change; its values are copied out of `buf`, which may be reused afterwards. */
  add(rel: ApplyRelation, c: ChangeSpans, buf: Buffer, maxGroupRows: number): void {
    const t = rel.table;
    let setIndexes: number[];
    let keySource: TupleSpans;
    const keys: string[] = [];
    if (c.kind === 'insert') {
      const neu = c.new as TupleSpans;
      setIndexes = [];
      for (let i = 0; i < neu.n; i++) setIndexes.push(i);
      keySource = neu;
    } else if (c.kind === 'update') {
      const neu = c.new as TupleSpans;
      keySource = c.old ?? neu;
      const changed =
        c.old !== null &&
        t.keyIndexes.some(
          (i) => neu.kinds[i] !== COL_UNCHANGED_TOAST && !neu.sameValue(buf, i, c.old as TupleSpans),
        );
      setIndexes = [];
      for (let i = 0; i < neu.n; i++) {
        if (neu.kinds[i] === COL_UNCHANGED_TOAST) continue;
        if (!changed && t.columns[i]?.isKey) continue;
        setIndexes.push(i);
      }
      keys.push(keyString(buf, keySource, t.keyIndexes));
      if (changed) keys.push(keyString(buf, neu, t.keyIndexes));
    } else {
      keySource = c.old as TupleSpans;
      setIndexes = [];
      keys.push(keyString(buf, keySource, t.keyIndexes));
    }
    const shapeKey = `${rel.id}.${rel.version}:${c.kind[0]}:${c.kind === 'insert' ? '' : setIndexes.join(',')}`;
    let g = this.groups[this.groups.length - 1];
    if (!g || !g.accepts(shapeKey, keys, maxGroupRows)) {
      g = new TxGroup({ table: t, kind: c.kind, setIndexes }, shapeKey);
      this.groups.push(g);
    }
    g.addKeys(keys);
    const cols = g.columns;
    let j = 0;
    if (c.kind === 'insert') {
      const neu = c.new as TupleSpans;
      for (const i of setIndexes) append(cols[j++] as TextColumn, buf, neu, i);
    } else {
      for (const i of t.keyIndexes) append(cols[j++] as TextColumn, buf, keySource, i);
      if (c.kind === 'update') {
        const neu = c.new as TupleSpans;
        for (const i of setIndexes) append(cols[j++] as TextColumn, buf, neu, i);
      }
    }
    g.rows++;
    this.rows++;
    this.bytes += buf.length;
  }
}
