import { describe, expect, it } from 'vitest';
import {
  fixedArray,
  intMatrix,
  OID,
  stringArray,
  TIMESTAMP_INFINITY,
  timestampMatrix,
} from './wire-arrays.js';

/** Decodes a one- or two-dimensional binary array of 8-byte elements (int8, timestamptz, pg_lsn). */
function decode8(b: Buffer, unsigned = false) {
  const ndim = b.readInt32BE(0);
  const dims: Array<{ len: number; lower: number }> = [];
  for (let d = 0; d < ndim; d++)
    dims.push({ len: b.readInt32BE(12 + d * 8), lower: b.readInt32BE(16 + d * 8) });
  let o = 12 + ndim * 8;
  const values: Array<bigint | null> = [];
  const cells = dims.reduce((n, d) => n * d.len, ndim === 0 ? 0 : 1);
  for (let i = 0; i < cells; i++) {
    const len = b.readInt32BE(o);
    o += 4;
    if (len < 0) values.push(null);
    else {
      expect(len).toBe(8);
      values.push(unsigned ? b.readBigUInt64BE(o) : b.readBigInt64BE(o));
      o += 8;
    }
  }
  expect(o).toBe(b.length);
  return { ndim, hasNull: b.readInt32BE(4), oid: b.readInt32BE(8), dims, values };
}

describe('binary arrays for the apply parameters', () => {
  it('writes 8-byte values exactly, negative, past 2^53 and at the limits, with nulls', () => {
    const values = [
      0n,
      1n,
      -1n,
      -123_456_789_012_345n,
      2n ** 53n + 1n,
      900_000_000_000_000n,
      TIMESTAMP_INFINITY,
      -(2n ** 63n),
      null,
    ];
    // Small buffers are slices of Node's pool: the writes must land at the slice, not the pool's start.
    Buffer.allocUnsafe(3);
    const b = fixedArray(OID.timestamptz, values);
    expect(b.byteOffset).toBeGreaterThan(0);
    expect(decode8(b)).toEqual({
      ndim: 1,
      hasNull: 1,
      oid: OID.timestamptz,
      dims: [{ len: 9, lower: 1 }],
      values,
    });
  });

  it('keeps the bits of a pg_lsn past 2^63 (unsigned on the wire)', () => {
    const lsn = 2n ** 64n - 2n;
    expect(decode8(fixedArray(OID.pg_lsn, [lsn, 22n], 0), true)).toEqual({
      ndim: 1,
      hasNull: 0,
      oid: OID.pg_lsn,
      dims: [{ len: 2, lower: 0 }],
      values: [lsn, 22n],
    });
  });

  it('takes numbers for 8-byte elements and writes int4 as 4 bytes', () => {
    expect(decode8(fixedArray(OID.int8, [7, 2 ** 40])).values).toEqual([7n, 2n ** 40n]);
    const b = fixedArray(OID.int4, [5, -6]);
    expect([b.readInt32BE(24), b.readInt32BE(32)]).toEqual([5, -6]);
    expect(b.length).toBe(20 + 2 * 8);
  });

  it('writes a timestamp matrix row by row, short rows padded with nulls', () => {
    const m = decode8(timestampMatrix([[1n, null], [3n]], 2, 0));
    expect(m).toEqual({
      ndim: 2,
      hasNull: 1,
      oid: OID.timestamptz,
      dims: [
        { len: 2, lower: 1 },
        { len: 2, lower: 0 },
      ],
      values: [1n, null, 3n, null],
    });
  });

  it('writes empty arrays as zero dimensions', () => {
    for (const b of [fixedArray(OID.int8, []), stringArray([])]) expect(b.readInt32BE(0)).toBe(0);
    expect(intMatrix([[1, 2]]).readInt32BE(0)).toBe(2);
  });
});
