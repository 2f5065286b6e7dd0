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
      o = b.writeBigInt64BE(BigInt(v), o);
    }
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
        o = b.writeBigInt64BE(v, o);
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

/**
 * text[] elements gathered from pgoutput tuple data: each element is the 4-byte length and
 * the bytes that follow a 't' column in a tuple (exactly the binary element layout), or
 * NULL. Elements are appended as spans of message buffers and copied once, into the array.
 */
export class TextColumn {
  private chunks: Buffer[] = [];
  private cur: Buffer;
  private pos = 0;
  count = 0;
  private nulls = 0;

  constructor(initial = 256) {
    this.cur = Buffer.allocUnsafe(initial);
  }

  private room(n: number): void {
    if (this.pos + n <= this.cur.length) return;
    this.chunks.push(this.cur.subarray(0, this.pos));
    this.cur = Buffer.allocUnsafe(Math.max(n, this.cur.length * 2));
    this.pos = 0;
  }

  /** Appends the element whose int32 length starts at `at` in `buf` (pgoutput's 't' column body). */
  addSpan(buf: Buffer, at: number): void {
    const len = buf.readInt32BE(at);
    this.room(4 + len);
    this.pos += buf.copy(this.cur, this.pos, at, at + 4 + len);
    this.count++;
  }

  addNull(): void {
    this.room(4);
    this.pos = this.cur.writeInt32BE(-1, this.pos);
    this.count++;
    this.nulls++;
  }

  private parts(): Buffer[] {
    return [...this.chunks, this.cur.subarray(0, this.pos)];
  }

  get byteLength(): number {
    let n = this.pos;
    for (const c of this.chunks) n += c.length;
    return n;
  }

  /** The text[] parameter. */
  toArray(): Buffer {
    return TextColumn.concat([this]);
  }

  /** One text[] parameter of the elements of several columns, in order (one copy). */
  static concat(columns: readonly TextColumn[]): Buffer {
    let count = 0;
    let nulls = 0;
    for (const c of columns) {
      count += c.count;
      nulls += c.nulls;
    }
    if (count === 0) {
      const b = Buffer.allocUnsafe(12);
      header(b, 0, false, OID.text);
      return b;
    }
    const head = Buffer.allocUnsafe(20);
    header(head, 1, nulls > 0, OID.text);
    head.writeInt32BE(count, 12);
    head.writeInt32BE(1, 16);
    const parts: Buffer[] = [head];
    for (const c of columns) for (const p of c.parts()) parts.push(p);
    return Buffer.concat(parts);
  }
}
