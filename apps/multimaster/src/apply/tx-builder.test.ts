import type { Lsn } from '@pgfleet/wal';
import { describe, expect, it } from 'vitest';
import { readChange, TupleSpans } from '../decode/change-reader.js';
import { type PgoutputMessage, UNCHANGED_TOAST } from '../decode/messages.js';
import { encodePgoutput } from '../decode/pgoutput-encode.js';
import { tableKey, txShape } from './batch.js';
import type { ApplyTable } from './statements.js';
import { type ApplyRelation, PendingTx, rowMatrix } from './tx-builder.js';

const table: ApplyTable = {
  schema: 's',
  name: 't',
  columns: [
    { name: 'id', type: 'integer', isKey: true },
    { name: 'v', type: 'text', isKey: false },
    { name: 'big', type: 'text', isKey: false },
  ],
  keyIndexes: [0],
  identityFull: false,
};
const rel: ApplyRelation = { id: 1, version: 1, table };
const other: ApplyRelation = { id: 2, version: 1, table: { ...table, name: 'u' } };

/** A group's matrix (rows × parameters, row-major) as one list per parameter. */
function decodeMatrix(b: Buffer): Array<Array<string | null>> {
  if (b.readInt32BE(0) === 0) return [];
  expect(b.readInt32BE(0)).toBe(2);
  const rows = b.readInt32BE(12);
  const width = b.readInt32BE(20);
  let o = 28;
  let nulls = false;
  const out: Array<Array<string | null>> = Array.from({ length: width }, () => []);
  for (let r = 0; r < rows; r++)
    for (let j = 0; j < width; j++) {
      const len = b.readInt32BE(o);
      o += 4;
      nulls ||= len < 0;
      out[j]?.push(len < 0 ? null : b.toString('utf8', o, o + len));
      if (len > 0) o += len;
    }
  expect(o).toBe(b.length);
  expect(b.readInt32BE(4)).toBe(nulls ? 1 : 0); // the has-nulls flag
  return out;
}

function build(changes: Array<[ApplyRelation, PgoutputMessage]>, maxRows = 1000): PendingTx {
  const tx = new PendingTx(1n as Lsn, 1n, 1, 0);
  for (const [r, m] of changes) {
    const buf = encodePgoutput(m);
    tx.add(r, readChange(buf, new TupleSpans(), new TupleSpans()), buf, maxRows);
    buf.fill(0); // the stream reuses its buffer: values must have been copied
  }
  return tx;
}

const ins = (id: number, v: string | null): PgoutputMessage => ({
  tag: 'insert',
  relationId: 1,
  newTuple: [String(id), v, 'x'],
});
const upd = (
  id: number,
  v: string,
  big: string | typeof UNCHANGED_TOAST = 'x',
  oldKey?: number,
): PgoutputMessage => ({
  tag: 'update',
  relationId: 1,
  key: oldKey === undefined ? null : [String(oldKey), null, null],
  old: null,
  newTuple: [String(id), v, big],
});

describe('PendingTx grouping', () => {
  it('puts consecutive changes of one table, kind and columns into one group, values copied out', () => {
    const tx = build([
      [rel, ins(1, 'a')],
      [rel, ins(2, null)],
      [rel, upd(1, 'b')],
      [rel, upd(2, 'c')],
      [other, { tag: 'delete', relationId: 2, key: ['9', null, null], old: null }],
    ]);
    expect(tx.groups.map((g) => [g.shape.kind, g.rows, g.shape.setIndexes])).toEqual([
      ['insert', 2, [0, 1, 2]],
      ['update', 2, [1, 2]],
      ['delete', 1, []],
    ]);
    expect(decodeMatrix(rowMatrix([{ tx, g: tx.groups[0]! }], 3))).toEqual([
      ['1', '2'],
      ['a', null],
      ['x', 'x'],
    ]);
    // An update's parameters: the old key, then the new values.
    expect(decodeMatrix(rowMatrix([{ tx, g: tx.groups[1]! }], 3))).toEqual([
      ['1', '2'],
      ['b', 'c'],
      ['x', 'x'],
    ]);
    expect(tx.rows).toBe(5);
  });

  it('starts a new group for a second change of a key, so it sees the first', () => {
    const tx = build([
      [rel, upd(1, 'a')],
      [rel, upd(2, 'b')],
      [rel, upd(1, 'c')],
    ]);
    expect(tx.groups.map((g) => g.rows)).toEqual([2, 1]);
  });

  it('finds a repeated key however many rows the group already holds', () => {
    // Past 16 keys a group keeps them in a set: a key from before that must still split it.
    const ids = Array.from({ length: 40 }, (_, i) => i + 1);
    const tx = build([
      ...ids.map((id) => [rel, upd(id, 'a')] as [ApplyRelation, PgoutputMessage]),
      [rel, upd(3, 'b')],
      [rel, upd(40, 'c')],
    ]);
    expect(tx.groups.map((g) => g.rows)).toEqual([40, 2]);
    expect(decodeMatrix(rowMatrix([{ tx, g: tx.groups[1]! }], 3))[1]).toEqual(['b', 'c']);
  });

  it('copies long values and short ones alike', () => {
    const long = 'é'.repeat(100); // 200 bytes: copied in one piece, short ones byte by byte
    const tx = build([
      [rel, ins(1, long)],
      [rel, ins(2, 'ab')],
    ]);
    expect(decodeMatrix(rowMatrix([{ tx, g: tx.groups[0]! }], 3))).toEqual([
      ['1', '2'],
      [long, 'ab'],
      ['x', 'x'],
    ]);
  });

  it('counts an update that changes its key under both keys', () => {
    // 1 → 5, then 5 → 6: in one set-based statement the second would not see the first.
    const tx = build([
      [rel, upd(5, 'a', 'x', 1)],
      [rel, upd(6, 'b', 'x', 5)],
    ]);
    expect(tx.groups.map((g) => [g.rows, g.shape.setIndexes])).toEqual([
      [1, [0, 1, 2]],
      [1, [0, 1, 2]],
    ]);
    // The key changed: it is assigned, and matched by its old value.
    expect(decodeMatrix(rowMatrix([{ tx, g: tx.groups[0]! }], 4))).toEqual([['1'], ['5'], ['a'], ['x']]);
  });

  it('leaves unchanged TOAST columns out of the assignments (another shape, another group)', () => {
    const tx = build([
      [rel, upd(1, 'a', UNCHANGED_TOAST)],
      [rel, upd(2, 'b', 'new big')],
    ]);
    expect(tx.groups.map((g) => g.shape.setIndexes)).toEqual([[1], [1, 2]]);
    expect(tx.groups[0]?.shapeKey).not.toBe(tx.groups[1]?.shapeKey);
  });

  it('splits groups at the row limit and concatenates transactions of a run in order', () => {
    const a = build(
      [1, 2, 3].map((i) => [rel, ins(i, `a${i}`)]),
      2,
    );
    expect(a.groups.map((g) => g.rows)).toEqual([2, 1]);
    const b = build([[rel, ins(10, 'b')]]);
    const m = decodeMatrix(
      rowMatrix(
        [
          { tx: a, g: a.groups[1]! },
          { tx: b, g: b.groups[0]! },
        ],
        3,
      ),
    );
    expect(m[0]).toEqual(['3', '10']);
  });

  it('keeps only the unsent group of a streamed transaction, and its values', () => {
    const tx = build([
      [rel, ins(1, 'a')],
      [other, { tag: 'delete', relationId: 2, key: ['9', null, null], old: null }],
      [other, { tag: 'delete', relationId: 2, key: ['8', null, null], old: null }],
    ]);
    tx.keepOnly(tx.groups[1]);
    expect(tx.groups).toHaveLength(1);
    expect(decodeMatrix(rowMatrix([{ tx, g: tx.groups[0]! }], 1))).toEqual([['9', '8']]);
    const more = encodePgoutput({ tag: 'delete', relationId: 2, key: ['7', null, null], old: null });
    tx.add(other, readChange(more, new TupleSpans(), new TupleSpans()), more, 1000);
    expect(decodeMatrix(rowMatrix([{ tx, g: tx.groups[0]! }], 1))).toEqual([['9', '8', '7']]);
    tx.keepOnly(undefined);
    expect(tx.groups).toEqual([]);
  });
});

describe('txShape: how a transaction is applied', () => {
  const ready = (tx: PendingTx, persist: string | null = null) => ({
    tx,
    endLsn: 2n as Lsn,
    seen: [],
    persist,
  });
  const insOther = (id: number): PgoutputMessage => ({
    tag: 'insert',
    relationId: 2,
    newTuple: [String(id), 'o', 'x'],
  });

  it('applies single-row inserts plainly until their table is known to hold existing keys', () => {
    const tx = build([
      [rel, ins(1, 'a')],
      [other, insOther(2)],
      [rel, ins(3, 'c')],
    ]);
    const plain = txShape(ready(tx), new Set());
    expect(plain.shape.groups.map((g) => [g.single, g.plainInsert])).toEqual([
      [true, true],
      [true, true],
      [true, true],
    ]);
    const onConflict = txShape(ready(tx), new Set([tableKey(table)]));
    expect(onConflict.shape.groups.map((g) => g.plainInsert)).toEqual([false, true, false]);
    // Different procedures: the key tells them apart.
    expect(onConflict.key).not.toBe(plain.key);
    expect(txShape(ready(tx), new Set([tableKey(other.table)])).key).not.toBe(onConflict.key);
  });

  it('never marks multi-row groups, updates or deletes plain, and keys the seen record', () => {
    const tx = build([
      [rel, ins(1, 'a')],
      [rel, ins(2, 'b')],
      [rel, upd(1, 'A')],
    ]);
    const s = txShape(ready(tx), new Set());
    expect(s.shape.groups.map((g) => [g.shape.kind, g.single, g.plainInsert])).toEqual([
      ['insert', false, false],
      ['update', true, false],
    ]);
    expect(s.shape.persists).toBe(false);
    const p = txShape(ready(tx, '{}'), new Set());
    expect(p.shape.persists).toBe(true);
    expect(p.key).toBe(`${s.key}|P`);
  });
});
