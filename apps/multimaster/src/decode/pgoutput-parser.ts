import { PgfleetError } from '@pgfleet/connection';
import type { Lsn } from '@pgfleet/wal';
import {
  type PgoutputMessage,
  type RelationColumn,
  type RelationMessage,
  type Tuple,
  UNCHANGED_TOAST,
} from './messages.js';

/** The stream carried bytes we do not understand (wrong protocol version or corruption). */
export class DecodeError extends PgfleetError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super('DECODE_ERROR', message, details);
  }
}

/**
 * Reads one pgoutput message (protocol version 1 or 2 without streaming), as documented in
 * "Logical Replication Message Formats". We parse it ourselves instead of using
 * pg-logical-replication's PgoutputParser because that one runs every value through pg's
 * global type parsers (numbers, Dates: lossy), keeps only milliseconds of commit
 * timestamps, and turns unchanged-TOAST columns into `undefined`.
 */
export function parsePgoutput(buf: Buffer): PgoutputMessage {
  const r = new Reader(buf);
  const tag = r.u8();
  switch (tag) {
    case 0x42 /* B */:
      return { tag: 'begin', finalLsn: r.lsn(), commitTs: r.i64(), xid: r.u32() };
    case 0x43 /* C */:
      {
        r.u8(); // flags, unused
        return { tag: 'commit', commitLsn: r.lsn(), endLsn: r.lsn(), commitTs: r.i64() };
      }
    case 0x4f /* O */:
      return { tag: 'origin', originLsn: r.lsn(), name: r.cstring() };
    case 0x52 /* R */:
      return readRelation(r);
    case 0x59 /* Y */:
      return { tag: 'type', typeOid: r.u32(), schema: r.cstring(), name: r.cstring() };
    case 0x49 /* I */:
      {
        const relationId = r.u32();
        expect(r.u8(), 0x4e, 'insert');
        return { tag: 'insert', relationId, newTuple: readTuple(r) };
      }
    case 0x55 /* U */:
      {
        const relationId = r.u32();
        let key: Tuple | null = null;
        let old: Tuple | null = null;
        let kind = r.u8();
        if (kind === 0x4b /* K */) {
          key = readTuple(r);
          kind = r.u8();
        } else if (kind === 0x4f /* O */) {
          old = readTuple(r);
          kind = r.u8();
        }
        expect(kind, 0x4e, 'update');
        return { tag: 'update', relationId, key, old, newTuple: readTuple(r) };
      }
    case 0x44 /* D */:
      {
        const relationId = r.u32();
        const kind = r.u8();
        if (kind === 0x4b) return { tag: 'delete', relationId, key: readTuple(r), old: null };
        if (kind === 0x4f) return { tag: 'delete', relationId, key: null, old: readTuple(r) };
        throw new DecodeError(`delete: unexpected tuple kind 0x${kind.toString(16)}`);
      }
    case 0x54 /* T */:
      {
        const n = r.u32();
        const flags = r.u8();
        const relationIds: number[] = [];
        for (let i = 0; i < n; i++) relationIds.push(r.u32());
        return {
          tag: 'truncate',
          relationIds,
          cascade: (flags & 1) !== 0,
          restartIdentity: (flags & 2) !== 0,
        };
      }
    case 0x4d /* M */:
      {
        const flags = r.u8();
        const lsn = r.lsn();
        const prefix = r.cstring();
        const len = r.u32();
        return { tag: 'message', transactional: (flags & 1) !== 0, lsn, prefix, content: r.bytes(len) };
      }
    default:
      throw new DecodeError(`unknown pgoutput message 0x${tag.toString(16)}`, { tag });
  }
}

function expect(got: number, want: number, what: string): void {
  if (got !== want)
    throw new DecodeError(`${what}: expected tuple kind 0x${want.toString(16)}, got 0x${got.toString(16)}`);
}

function readRelation(r: Reader): RelationMessage {
  const relationId = r.u32();
  const schema = r.cstring();
  const name = r.cstring();
  const ident = String.fromCharCode(r.u8());
  if (ident !== 'd' && ident !== 'n' && ident !== 'f' && ident !== 'i') {
    throw new DecodeError(`relation ${schema}.${name}: unknown replica identity '${ident}'`);
  }
  const n = r.u16();
  const columns: RelationColumn[] = [];
  for (let i = 0; i < n; i++) {
    const flags = r.u8();
    columns.push({ isKey: (flags & 1) !== 0, name: r.cstring(), typeOid: r.u32(), typeMod: r.i32() });
  }
  return { tag: 'relation', relationId, schema, name, replicaIdentity: ident, columns };
}

function readTuple(r: Reader): Tuple {
  const n = r.u16();
  const out: Tuple = new Array(n);
  for (let i = 0; i < n; i++) {
    const kind = r.u8();
    switch (kind) {
      case 0x6e /* n */:
        out[i] = null;
        break;
      case 0x75 /* u */:
        out[i] = UNCHANGED_TOAST;
        break;
      case 0x74 /* t */:
        {
          const len = r.u32();
          out[i] = r.utf8(len);
          break;
        }
      case 0x62 /* b */:
        throw new DecodeError(
          'binary tuple data received; the stream must be opened without the binary option',
        );
      default:
        throw new DecodeError(`unknown tuple column kind 0x${kind.toString(16)}`);
    }
  }
  return out;
}

class Reader {
  private pos = 0;
  constructor(private readonly buf: Buffer) {}

  private need(n: number): void {
    if (this.pos + n > this.buf.length)
      throw new DecodeError('truncated pgoutput message', { at: this.pos, need: n });
  }
  u8(): number {
    this.need(1);
    return this.buf.readUInt8(this.pos++);
  }
  u16(): number {
    this.need(2);
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  u32(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  i32(): number {
    this.need(4);
    const v = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  i64(): bigint {
    this.need(8);
    const v = this.buf.readBigInt64BE(this.pos);
    this.pos += 8;
    return v;
  }
  lsn(): Lsn {
    this.need(8);
    const v = this.buf.readBigUInt64BE(this.pos);
    this.pos += 8;
    return v as Lsn;
  }
  cstring(): string {
    const end = this.buf.indexOf(0, this.pos);
    if (end === -1) throw new DecodeError('unterminated string in pgoutput message');
    const s = this.buf.toString('utf8', this.pos, end);
    this.pos = end + 1;
    return s;
  }
  utf8(len: number): string {
    this.need(len);
    const s = this.buf.toString('utf8', this.pos, this.pos + len);
    this.pos += len;
    return s;
  }
  bytes(len: number): Buffer {
    this.need(len);
    const b = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return b;
  }
}
