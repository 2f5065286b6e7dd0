import { describe, expect, it } from 'vitest';
import { UNCHANGED_TOAST } from './messages.js';
import { DecodeError, parsePgoutput } from './pgoutput-parser.js';

/** Builds pgoutput bytes by hand, following "Logical Replication Message Formats". */
class W {
  parts: Buffer[] = [];
  u8(v: number) {
    this.parts.push(Buffer.from([v]));
    return this;
  }
  u16(v: number) {
    const b = Buffer.alloc(2);
    b.writeUInt16BE(v);
    this.parts.push(b);
    return this;
  }
  u32(v: number) {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(v);
    this.parts.push(b);
    return this;
  }
  i64(v: bigint) {
    const b = Buffer.alloc(8);
    b.writeBigInt64BE(v);
    this.parts.push(b);
    return this;
  }
  str(s: string) {
    this.parts.push(Buffer.from(`${s}\0`, 'utf8'));
    return this;
  }
  text(s: string) {
    const b = Buffer.from(s, 'utf8');
    return this.u8(0x74).u32(b.length).raw(b);
  }
  raw(b: Buffer) {
    this.parts.push(b);
    return this;
  }
  done() {
    return Buffer.concat(this.parts);
  }
}

describe('parsePgoutput', () => {
  it('keeps commit timestamps to the microsecond and LSNs as bigint', () => {
    const m = parsePgoutput(
      new W().u8(0x42).i64(0x1_0000_0010n).i64(757_382_400_123_456n).u32(4000000000).done(),
    );
    expect(m).toEqual({
      tag: 'begin',
      finalLsn: 0x1_0000_0010n,
      commitTs: 757_382_400_123_456n,
      xid: 4000000000,
    });
    const c = parsePgoutput(new W().u8(0x43).u8(0).i64(16n).i64(24n).i64(5n).done());
    expect(c).toEqual({ tag: 'commit', commitLsn: 16n, endLsn: 24n, commitTs: 5n });
  });

  it('reads a relation with key flags and type oids', () => {
    const m = parsePgoutput(
      new W()
        .u8(0x52)
        .u32(16384)
        .str('my schema')
        .str('T"x')
        .u8(0x64)
        .u16(2)
        .u8(1)
        .str('id')
        .u32(23)
        .u32(0xffffffff)
        .u8(0)
        .str('v')
        .u32(1700)
        .u32(2621464)
        .done(),
    );
    expect(m).toEqual({
      tag: 'relation',
      relationId: 16384,
      schema: 'my schema',
      name: 'T"x',
      replicaIdentity: 'd',
      columns: [
        { isKey: true, name: 'id', typeOid: 23, typeMod: -1 },
        { isKey: false, name: 'v', typeOid: 1700, typeMod: 2621464 },
      ],
    });
  });

  it('keeps values as exact text, NULL apart from empty string, and marks unchanged TOAST', () => {
    const big = '123456789012345678901234567890.000000000000000000001';
    const m = parsePgoutput(
      new W().u8(0x55).u32(7).u8(0x4e).u16(4).text(big).u8(0x6e).text('').u8(0x75).done(),
    );
    expect(m).toEqual({
      tag: 'update',
      relationId: 7,
      key: null,
      old: null,
      newTuple: [big, null, '', UNCHANGED_TOAST],
    });
  });

  it('reads the old key of an update that changed the key, and a delete by key', () => {
    const u = parsePgoutput(
      new W().u8(0x55).u32(7).u8(0x4b).u16(1).text('1').u8(0x4e).u16(1).text('2').done(),
    );
    expect(u).toMatchObject({ key: ['1'], newTuple: ['2'] });
    const d = parsePgoutput(new W().u8(0x44).u32(7).u8(0x4f).u16(2).text('1').u8(0x6e).done());
    expect(d).toEqual({ tag: 'delete', relationId: 7, key: null, old: ['1', null] });
  });

  it('reads origin and truncate messages', () => {
    expect(parsePgoutput(new W().u8(0x4f).i64(99n).str('pgfleet_b').done())).toEqual({
      tag: 'origin',
      originLsn: 99n,
      name: 'pgfleet_b',
    });
    expect(parsePgoutput(new W().u8(0x54).u32(2).u8(3).u32(10).u32(11).done())).toEqual({
      tag: 'truncate',
      relationIds: [10, 11],
      cascade: true,
      restartIdentity: true,
    });
  });

  it('rejects truncated and unknown messages with DecodeError', () => {
    expect(() => parsePgoutput(new W().u8(0x42).u32(1).done())).toThrow(DecodeError);
    expect(() => parsePgoutput(new W().u8(0x5a).done())).toThrow(/unknown pgoutput message/);
    expect(() => parsePgoutput(new W().u8(0x49).u32(1).u8(0x4e).u16(1).u8(0x62).done())).toThrow(/binary/);
  });
});
