/**
 * One-dimensional arrays in PostgreSQL's binary wire format (array_recv), built straight
 * from bytes: node-pg sends a Buffer parameter in binary, so the apply's parameters never
 * pass through JavaScript strings or array literals (no escaping, no parsing).
 *
 * Layout: int32 ndim, int32 has-nulls flag, int32 element type oid, then per dimension
 * int32 length and int32 lower bound, then per element int32 byte length (-1: NULL) and the
 * bytes in the element type's binary form (for text: its UTF-8 bytes).
 */
export const OID = {
  int4: 23,
  int8: 20,
  text: 25,
  jsonb: 3802,
  timestamptz: 1184,
  pg_lsn: 3220,
} as const;

/** PostgreSQL's +infinity timestamp (DT_NOEND) in binary form. */
export const TIMESTAMP_INFINITY = 0x7fffffffffffffffn;

/**
 * A view for 8-byte writes: DataView#setBigInt64 stores a BigInt as it is, several times
 * faster than Buffer#writeBigInt64BE, which splits it with BigInt arithmetic (allocations
 * the collector then pays for; the apply writes four such values per transaction).
 */
function viewOf(b: Buffer): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

function header(b: Buffer, ndim: number, hasNull: boolean, oid: number): number {
  b.writeInt32BE(ndim, 0);
  b.writeInt32BE(hasNull ? 1 : 0, 4);
  b.writeInt32BE(oid, 8);
  return 12;
}

/** int4[] / int8[] / timestamptz[] / pg_lsn[] of fixed-width values; null elements allowed. */
export function fixedArray(
  oid: number,
  values: ReadonlyArray<number | bigint | null>,
  lowerBound = 1,
): Buffer {
  const width = oid === OID.int4 ? 4 : 8;
  let nulls = 0;
  for (const v of values) if (v === null) nulls++;
  const n = values.length;
  if (n === 0) {
    const b = Buffer.allocUnsafe(12);
    header(b, 0, false, oid);
    return b;
  }
  const b = Buffer.allocUnsafe(20 + n * 4 + (n - nulls) * width);
  const view = viewOf(b);
  let o = header(b, 1, nulls > 0, oid);
  o = b.writeInt32BE(n, o);
  o = b.writeInt32BE(lowerBound, o);
  for (const v of values) {
    if (v === null) {
      o = b.writeInt32BE(-1, o);
    } else if (width === 4) {
      o = b.writeInt32BE(4, o);
      o = b.writeInt32BE(Number(v), o);
    } else {
      o = b.writeInt32BE(8, o);
      view.setBigInt64(o, BigInt(v)); // wraps to 64 bits: a pg_lsn past 2^63 keeps its bits
      o += 8;
    }
  }
  return b;
}

/** A two-dimensional int4 array (rows × equal-length columns, lower bounds 1). */
export function intMatrix(rows: ReadonlyArray<ReadonlyArray<number>>): Buffer {
  const width = rows[0]?.length ?? 0;
  const b = Buffer.allocUnsafe(28 + rows.length * width * 8);
  let o = header(b, 2, false, OID.int4);
  o = b.writeInt32BE(rows.length, o);
  o = b.writeInt32BE(1, o);
  o = b.writeInt32BE(width, o);
  o = b.writeInt32BE(1, o);
  for (const r of rows)
    for (const v of r) {
      o = b.writeInt32BE(4, o);
      o = b.writeInt32BE(v, o);
    }
  return b;
}

/** A two-dimensional timestamptz array (rows × width, lower bounds 1 and `lowerBound2`); null elements allowed. */
export function timestampMatrix(
  rows: ReadonlyArray<ReadonlyArray<bigint | null>>,
  width: number,
  lowerBound2 = 0,
): Buffer {
  let nulls = 0;
  for (const r of rows) for (let i = 0; i < width; i++) if ((r[i] ?? null) === null) nulls++;
  const cells = rows.length * width;
  const b = Buffer.allocUnsafe(28 + cells * 4 + (cells - nulls) * 8);
  const view = viewOf(b);
  let o = header(b, 2, nulls > 0, OID.timestamptz);
  o = b.writeInt32BE(rows.length, o);
  o = b.writeInt32BE(1, o);
  o = b.writeInt32BE(width, o);
  o = b.writeInt32BE(lowerBound2, o);
  for (const r of rows)
    for (let i = 0; i < width; i++) {
      const v = r[i] ?? null;
      if (v === null) o = b.writeInt32BE(-1, o);
      else {
        o = b.writeInt32BE(8, o);
        view.setBigInt64(o, v);
        o += 8;
      }
    }
  return b;
}

/** text[] (or jsonb[], whose binary element is a version byte 1 and the JSON text) of strings. */
export function stringArray(
  values: ReadonlyArray<string | null>,
  oid: number = OID.text,
  lowerBound = 1,
): Buffer {
  const parts = values.map((v) => (v === null ? null : Buffer.from(v, 'utf8')));
  const extra = oid === OID.jsonb ? 1 : 0;
  let size = 20;
  let nulls = 0;
  for (const p of parts) {
    size += 4;
    if (p === null) nulls++;
    else size += p.length + extra;
  }
  if (parts.length === 0) {
    const b = Buffer.allocUnsafe(12);
    header(b, 0, false, oid);
    return b;
  }
  const b = Buffer.allocUnsafe(size);
  let o = header(b, 1, nulls > 0, oid);
  o = b.writeInt32BE(parts.length, o);
  o = b.writeInt32BE(lowerBound, o);
  for (const p of parts) {
    if (p === null) o = b.writeInt32BE(-1, o);
    else {
      o = b.writeInt32BE(p.length + extra, o);
      if (extra) o = b.writeUInt8(1, o);
      o += p.copy(b, o);
    }
  }
  return b;
}
