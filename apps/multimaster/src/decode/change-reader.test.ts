import { describe, expect, it } from 'vitest';
import { COL_NULL, COL_TEXT, COL_UNCHANGED_TOAST, readChange, TupleSpans } from './change-reader.js';
import { UNCHANGED_TOAST } from './messages.js';
import { encodePgoutput } from './pgoutput-encode.js';
import { DecodeError, parsePgoutput } from './pgoutput-parser.js';

const text = (buf: Buffer, s: TupleSpans, i: number) => {
  const at = s.at[i] as number;
  return buf.toString('utf8', at + 4, at + 4 + buf.readInt32BE(at));
};

describe('readChange', () => {
  it('finds every column of an insert without decoding it: text, NULL, empty text', () => {
    const buf = encodePgoutput({ tag: 'insert', relationId: 7, newTuple: ['1', null, '', 'ü "q"'] });
    const c = readChange(buf, new TupleSpans(), new TupleSpans());
    expect(c.kind).toBe('insert');
    expect(c.relationId).toBe(7);
    const n = c.new as TupleSpans;
    expect([...n.kinds.slice(0, n.n)]).toEqual([COL_TEXT, COL_NULL, COL_TEXT, COL_TEXT]);
    expect([0, 2, 3].map((i) => text(buf, n, i))).toEqual(['1', '', 'ü "q"']);
  });

  it('reads an update with an old key (K), with the whole old row (O), and without either', () => {
    const k = encodePgoutput({
      tag: 'update',
      relationId: 1,
      key: ['5', null],
      old: null,
      newTuple: ['6', UNCHANGED_TOAST],
    });
    const ck = readChange(k, new TupleSpans(), new TupleSpans());
    expect(ck.old && text(k, ck.old, 0)).toBe('5');
    expect(ck.oldIsFullRow).toBe(false);
    expect(ck.new?.kinds[1]).toBe(COL_UNCHANGED_TOAST);
    const o = encodePgoutput({
      tag: 'update',
      relationId: 1,
      key: null,
      old: ['5', 'a'],
      newTuple: ['5', 'b'],
    });
    const co = readChange(o, new TupleSpans(), new TupleSpans());
    expect(co.oldIsFullRow).toBe(true);
    expect(co.old?.sameValue(o, 0, co.new as TupleSpans)).toBe(true);
    expect(co.old?.sameValue(o, 1, co.new as TupleSpans)).toBe(false);
    const plain = encodePgoutput({
      tag: 'update',
      relationId: 1,
      key: null,
      old: null,
      newTuple: ['5', 'b'],
    });
    expect(readChange(plain, new TupleSpans(), new TupleSpans()).old).toBeNull();
  });

  it('reads deletes by key and by old row, and tells values apart byte for byte', () => {
    const d = encodePgoutput({ tag: 'delete', relationId: 2, key: ['x', null], old: null });
    const c = readChange(d, new TupleSpans(), new TupleSpans());
    expect(c.kind).toBe('delete');
    expect(c.old?.keyText(d, 0)).toBe('x');
    // NULL and the text "NULL" are different keys.
    expect(c.old?.keyText(d, 1)).not.toBe(
      new TupleSpans().keyText(encodePgoutput({ tag: 'insert', relationId: 1, newTuple: ['NULL'] }), 0),
    );
  });

  it('agrees with the full parser on a wide row (spans are reused and grown)', () => {
    const values = Array.from({ length: 40 }, (_, i) => (i % 7 === 0 ? null : `v${i}`.repeat(i)));
    const buf = encodePgoutput({ tag: 'insert', relationId: 3, newTuple: values });
    const spans = new TupleSpans();
    readChange(buf, new TupleSpans(), spans);
    const parsed = parsePgoutput(buf);
    if (parsed.tag !== 'insert') throw new Error('not an insert');
    expect(values.map((_, i) => (spans.kinds[i] === COL_NULL ? null : text(buf, spans, i)))).toEqual(
      parsed.newTuple,
    );
  });

  it('refuses truncated data and binary values with a decode error', () => {
    const buf = encodePgoutput({ tag: 'insert', relationId: 3, newTuple: ['abcdef'] });
    expect(() => readChange(buf.subarray(0, buf.length - 2), new TupleSpans(), new TupleSpans())).toThrow(
      DecodeError,
    );
    const binary = Buffer.from(buf);
    binary[8] = 0x62; // 'b'
    expect(() => readChange(binary, new TupleSpans(), new TupleSpans())).toThrow(/binary tuple data/);
  });
});
