import { type PgoutputMessage, type Tuple, UNCHANGED_TOAST } from './messages.js';

/**
 * Encodes a message in pgoutput's wire format (protocol 1, text values), the inverse of
 * parsePgoutput: tests feed the apply with exactly the bytes a walsender would send.
 */
export function encodePgoutput(m: PgoutputMessage): Buffer {
  const w = new Writer();
  switch (m.tag) {
    case 'begin':
      w.u8(0x42).u64(m.finalLsn).i64(m.commitTs).u32(m.xid);
      break;
    case 'commit':
      w.u8(0x43).u8(0).u64(m.commitLsn).u64(m.endLsn).i64(m.commitTs);
      break;
    case 'origin':
      w.u8(0x4f).u64(m.originLsn).str(m.name);
      break;
    case 'relation':
      w.u8(0x52)
        .u32(m.relationId)
        .str(m.schema)
        .str(m.name)
        .u8(m.replicaIdentity.charCodeAt(0))
        .u16(m.columns.length);
      for (const c of m.columns)
        w.u8(c.isKey ? 1 : 0)
          .str(c.name)
          .u32(c.typeOid)
          .i32(c.typeMod);
      break;
    case 'type':
      w.u8(0x59).u32(m.typeOid).str(m.schema).str(m.name);
      break;
    case 'insert':
      w.u8(0x49).u32(m.relationId).u8(0x4e).tuple(m.newTuple);
      break;
    case 'update':
      w.u8(0x55).u32(m.relationId);
      if (m.key) w.u8(0x4b).tuple(m.key);
      else if (m.old) w.u8(0x4f).tuple(m.old);
      w.u8(0x4e).tuple(m.newTuple);
      break;
    case 'delete':
      w.u8(0x44).u32(m.relationId);
      if (m.key) w.u8(0x4b).tuple(m.key);
      else w.u8(0x4f).tuple(m.old ?? []);
      break;
    case 'truncate':
      w.u8(0x54)
        .u32(m.relationIds.length)
        .u8((m.cascade ? 1 : 0) | (m.restartIdentity ? 2 : 0));
      for (const id of m.relationIds) w.u32(id);
      break;
    case 'message':
      w.u8(0x4d)
        .u8(m.transactional ? 1 : 0)
        .u64(m.lsn)
        .str(m.prefix)
        .u32(m.content.length)
        .raw(m.content);
      break;
  }
  return w.done();
}

class Writer {
  private parts: Buffer[] = [];
  private fixed(n: number, f: (b: Buffer) => void): this {
    const b = Buffer.alloc(n);
    f(b);
    this.parts.push(b);
    return this;
  }
  u8(v: number): this {
    return this.fixed(1, (b) => b.writeUInt8(v));
  }
  u16(v: number): this {
    return this.fixed(2, (b) => b.writeUInt16BE(v));
  }
  u32(v: number): this {
    return this.fixed(4, (b) => b.writeUInt32BE(v));
  }
  i32(v: number): this {
    return this.fixed(4, (b) => b.writeInt32BE(v));
  }
  u64(v: bigint): this {
    return this.fixed(8, (b) => b.writeBigUInt64BE(v));
  }
  i64(v: bigint): this {
    return this.fixed(8, (b) => b.writeBigInt64BE(v));
  }
  str(s: string): this {
    return this.raw(Buffer.from(`${s}\0`, 'utf8'));
  }
  raw(b: Buffer): this {
    this.parts.push(b);
    return this;
  }
  tuple(t: Tuple): this {
    this.u16(t.length);
    for (const v of t) {
      if (v === null) this.u8(0x6e);
      else if (v === UNCHANGED_TOAST) this.u8(0x75);
      else {
        const b = Buffer.from(v, 'utf8');
        this.u8(0x74).u32(b.length).raw(b);
      }
    }
    return this;
  }
  done(): Buffer {
    return Buffer.concat(this.parts);
  }
}
