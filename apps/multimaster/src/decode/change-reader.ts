import { DecodeError } from './pgoutput-parser.js';

/** Column kinds of pgoutput tuple data ("Logical Replication Message Formats", TupleData). */
export const COL_NULL = 0x6e; // 'n'
export const COL_UNCHANGED_TOAST = 0x75; // 'u'
export const COL_TEXT = 0x74; // 't'

/**
 * Where each column of a tuple sits in a message buffer, without decoding any value: the
 * kind byte per column and, for text columns, the offset of its int32 length (the value's
 * bytes follow). Reused from message to message; valid only while the buffer is.
 */
export class TupleSpans {
  n = 0;
  kinds = new Uint8Array(16);
  at = new Int32Array(16);

  /** Reads the TupleData at `pos`; returns the position after it. */
  read(buf: Buffer, pos: number): number {
    if (pos + 2 > buf.length) throw new DecodeError('truncated tuple');
    const n = buf.readUInt16BE(pos);
    pos += 2;
    if (n > this.kinds.length) {
      this.kinds = new Uint8Array(n * 2);
      this.at = new Int32Array(n * 2);
    }
    this.n = n;
    for (let i = 0; i < n; i++) {
      const kind = buf[pos++];
      if (kind === undefined) throw new DecodeError('truncated tuple');
      this.kinds[i] = kind;
      if (kind === COL_TEXT) {
        if (pos + 4 > buf.length) throw new DecodeError('truncated tuple');
        this.at[i] = pos;
        pos += 4 + buf.readInt32BE(pos);
        if (pos > buf.length) throw new DecodeError('truncated tuple value');
      } else if (kind === COL_NULL || kind === COL_UNCHANGED_TOAST) {
        this.at[i] = -1;
      } else if (kind === 0x62 /* b */) {
        throw new DecodeError(
          'binary tuple data received; the stream must be opened without the binary option',
        );
      } else {
        throw new DecodeError(`unknown tuple column kind 0x${kind.toString(16)}`);
      }
    }
    return pos;
  }

  /** Column `i` as text (latin1: a byte-exact key for comparisons, not for display), or null. */
  keyText(buf: Buffer, i: number): string {
    const at = this.at[i] as number;
    if (this.kinds[i] !== COL_TEXT) return this.kinds[i] === COL_NULL ? '\u0000n' : '\u0000u';
    return buf.toString('latin1', at + 4, at + 4 + buf.readInt32BE(at));
  }

  /** Whether column `i` holds the same value in `this` and in `other` (both over `buf`). */
  sameValue(buf: Buffer, i: number, other: TupleSpans): boolean {
    const k = this.kinds[i];
    if (k !== other.kinds[i]) return false;
    if (k !== COL_TEXT) return true;
    const a = this.at[i] as number;
    const b = other.at[i] as number;
    const la = buf.readInt32BE(a);
    return la === buf.readInt32BE(b) && buf.compare(buf, b + 4, b + 4 + la, a + 4, a + 4 + la) === 0;
  }
}

/** An INSERT, UPDATE or DELETE message read into spans (see readChange). */
export interface ChangeSpans {
  kind: 'insert' | 'update' | 'delete';
  relationId: number;
  /** The old key ('K') or old row ('O') of an update or delete, when sent. */
  old: TupleSpans | null;
  /** 'O': the old tuple is the whole old row (REPLICA IDENTITY FULL). */
  oldIsFullRow: boolean;
  /** The new row of an insert or update. */
  new: TupleSpans | null;
}

/** Reads an 'I', 'U' or 'D' message into `old`/`neu`, which it reuses. */
export function readChange(buf: Buffer, old: TupleSpans, neu: TupleSpans): ChangeSpans {
  const tag = buf[0];
  const relationId = buf.readUInt32BE(1);
  let pos = 5;
  if (tag === 0x49 /* I */) {
    if (buf[pos++] !== 0x4e) throw new DecodeError('insert: expected new tuple');
    neu.read(buf, pos);
    return { kind: 'insert', relationId, old: null, oldIsFullRow: false, new: neu };
  }
  if (tag === 0x55 /* U */) {
    let kind = buf[pos++];
    let hasOld = false;
    let full = false;
    if (kind === 0x4b /* K */ || kind === 0x4f /* O */) {
      full = kind === 0x4f;
      pos = old.read(buf, pos);
      hasOld = true;
      kind = buf[pos++];
    }
    if (kind !== 0x4e) throw new DecodeError('update: expected new tuple');
    neu.read(buf, pos);
    return { kind: 'update', relationId, old: hasOld ? old : null, oldIsFullRow: full, new: neu };
  }
  if (tag === 0x44 /* D */) {
    const kind = buf[pos++];
    if (kind !== 0x4b && kind !== 0x4f)
      throw new DecodeError(`delete: unexpected tuple kind 0x${kind?.toString(16)}`);
    old.read(buf, pos);
    return { kind: 'delete', relationId, old, oldIsFullRow: kind === 0x4f, new: null };
  }
  throw new DecodeError(`not a change message: 0x${tag?.toString(16)}`);
}
