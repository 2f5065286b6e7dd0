import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Lsn } from '@pgfleet/wal';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { PgoutputMessage } from './messages.js';
import { encodePgoutput } from './pgoutput-encode.js';
import { DecodeError, parsePgoutput } from './pgoutput-parser.js';
import { SpoolFile } from './spool-file.js';
import { StreamedTransactions } from './streamed-transactions.js';

// Protocol 2's stream messages, byte for byte as pgoutput writes them.
const start = (xid: number, first: boolean) => {
  const b = Buffer.alloc(6);
  b[0] = 0x53;
  b.writeUInt32BE(xid, 1);
  b[5] = first ? 1 : 0;
  return b;
};
const stop = () => Buffer.from([0x45]);
const streamCommit = (xid: number, commitLsn: bigint, endLsn: bigint, ts: bigint) => {
  const b = Buffer.alloc(30);
  b[0] = 0x63;
  b.writeUInt32BE(xid, 1);
  b.writeBigUInt64BE(commitLsn, 6);
  b.writeBigUInt64BE(endLsn, 14);
  b.writeBigInt64BE(ts, 22);
  return b;
};
const streamAbort = (xid: number, subxid: number) => {
  const b = Buffer.alloc(9);
  b[0] = 0x41;
  b.writeUInt32BE(xid, 1);
  b.writeUInt32BE(subxid, 5);
  return b;
};
/** A protocol-1 message as it appears inside a stream block: the (sub)xid after the tag. */
const inStream = (xid: number, m: PgoutputMessage) => {
  const v1 = encodePgoutput(m);
  const x = Buffer.alloc(4);
  x.writeUInt32BE(xid);
  return Buffer.concat([v1.subarray(0, 1), x, v1.subarray(1)]);
};

const rel: PgoutputMessage = {
  tag: 'relation',
  relationId: 16384,
  schema: 'public',
  name: 't',
  replicaIdentity: 'd',
  columns: [{ name: 'id', typeOid: 23, typeMod: -1, isKey: true }],
};
const ins = (id: string): PgoutputMessage => ({ tag: 'insert', relationId: 16384, newTuple: [id] });

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'pgfleet-streamed-test-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function harness(opts: { heldAfter?: (delivered: number) => boolean; throwAt?: number } = {}) {
  const out: PgoutputMessage[] = [];
  const holds: boolean[] = [];
  const failures: Error[] = [];
  let held = false;
  const st = new StreamedTransactions({
    dir,
    deliver: (m) => {
      if (out.length + 1 === opts.throwAt) throw new Error('downstream broke');
      out.push(parsePgoutput(Buffer.from(m)));
      if (opts.heldAfter?.(out.length)) held = true;
    },
    downstreamHeld: () => held,
    hold: (on) => holds.push(on),
    fail: (err) => failures.push(err),
  });
  return {
    st,
    out,
    holds,
    failures,
    async release() {
      held = false;
      st.resume();
      await Promise.resolve();
    },
    feed(...msgs: Buffer[]) {
      for (const m of msgs) st.receive(m);
    },
  };
}

describe('StreamedTransactions', () => {
  it('passes whole transactions through untouched', () => {
    const h = harness();
    const msgs: PgoutputMessage[] = [
      { tag: 'begin', finalLsn: 0x100n as Lsn, commitTs: 5n, xid: 700 },
      rel,
      ins('1'),
      { tag: 'commit', commitLsn: 0x100n as Lsn, endLsn: 0x130n as Lsn, commitTs: 5n },
    ];
    h.feed(...msgs.map(encodePgoutput));
    expect(h.out).toEqual(msgs);
    expect(h.holds).toEqual([]);
  });

  it('hands a streamed transaction on whole at its commit, after a transaction that committed while it streamed', () => {
    const h = harness();
    h.feed(start(800, true), inStream(800, rel), inStream(800, ins('1')), stop());
    // A small transaction commits on the source while 800 is still open.
    h.feed(
      encodePgoutput({ tag: 'begin', finalLsn: 0x200n as Lsn, commitTs: 6n, xid: 801 }),
      encodePgoutput(ins('x')),
      encodePgoutput({ tag: 'commit', commitLsn: 0x200n as Lsn, endLsn: 0x230n as Lsn, commitTs: 6n }),
    );
    expect(h.out.map((m) => m.tag)).toEqual(['begin', 'insert', 'commit']);
    expect(h.st.inProgress()).toBe(1);
    expect(h.st.spooledBytes()).toBeGreaterThan(0);
    h.feed(start(800, false), inStream(800, ins('2')), stop());
    h.feed(streamCommit(800, 0x300n, 0x330n, 7n));
    expect(h.out.slice(3)).toEqual([
      { tag: 'begin', finalLsn: 0x300n, commitTs: 7n, xid: 800 },
      rel,
      ins('1'),
      ins('2'),
      { tag: 'commit', commitLsn: 0x300n, endLsn: 0x330n, commitTs: 7n },
    ]);
    expect(h.holds).toEqual([true, false]);
    expect(h.st.inProgress()).toBe(0);
    expect(h.st.spooledBytes()).toBe(0);
  });

  it('drops a rolled-back subtransaction with its children, and keeps the schema it carried', () => {
    const h = harness();
    h.feed(
      start(900, true),
      inStream(900, ins('1')),
      // SAVEPOINT a; its schema goes out with a's xid
      inStream(901, rel),
      inStream(901, ins('a1')),
      // SAVEPOINT b inside a; RELEASE b
      inStream(902, ins('b1')),
      inStream(901, ins('a2')),
      stop(),
    );
    // ROLLBACK TO a: the source aborts b and a.
    h.feed(streamAbort(900, 902), streamAbort(900, 901));
    h.feed(start(900, false), inStream(900, ins('2')), stop(), streamCommit(900, 0x400n, 0x430n, 8n));
    expect(h.out).toEqual([
      { tag: 'begin', finalLsn: 0x400n, commitTs: 8n, xid: 900 },
      ins('1'),
      rel,
      ins('2'),
      { tag: 'commit', commitLsn: 0x400n, endLsn: 0x430n, commitTs: 8n },
    ]);
  });

  it('keeps a subtransaction that committed and drops the one rolled back after it', () => {
    const h = harness();
    h.feed(start(10, true), inStream(11, ins('kept')), inStream(12, ins('gone')), stop());
    h.feed(streamAbort(10, 12), streamAbort(10, 99));
    h.feed(streamCommit(10, 0x10n, 0x20n, 1n));
    expect(h.out.map((m) => (m.tag === 'insert' ? m.newTuple[0] : m.tag))).toEqual([
      'begin',
      'kept',
      'commit',
    ]);
  });

  it('drops an aborted transaction entirely, and its spool file with it', () => {
    const h = harness();
    const big = 'x'.repeat(4000);
    h.feed(start(30, true));
    for (let i = 0; i < 600; i++) h.feed(inStream(30, ins(`${i}${big}`)));
    h.feed(stop());
    const spoolDirs = readdirSync(dir);
    expect(spoolDirs).toHaveLength(1);
    expect(readdirSync(join(dir, spoolDirs[0] as string))).toEqual(['30']);
    h.feed(streamAbort(30, 30));
    expect(h.out).toEqual([]);
    expect(readdirSync(join(dir, spoolDirs[0] as string))).toEqual([]);
    h.st.close();
    expect(readdirSync(dir)).toEqual([]);
  });

  it('keeps only Begin, Origin, schema and Commit of a transaction that carries an origin', () => {
    const h = harness();
    h.feed(
      start(40, true),
      encodePgoutput({ tag: 'origin', originLsn: 0n as Lsn, name: 'pgfleet_b' }),
      inStream(40, rel),
      inStream(40, ins('1')),
      stop(),
      streamCommit(40, 0x50n, 0x60n, 2n),
    );
    expect(h.out.map((m) => m.tag)).toEqual(['begin', 'origin', 'relation', 'commit']);
  });

  it('waits while what it feeds holds the stream, and keeps what arrives meanwhile behind the replay', async () => {
    const h = harness({ heldAfter: (n) => n === 3 });
    h.feed(start(50, true));
    for (let i = 0; i < 5; i++) h.feed(inStream(50, ins(String(i))));
    h.feed(stop(), streamCommit(50, 0x70n, 0x80n, 3n));
    // Begin and two changes, then the downstream asked to pause.
    expect(h.out).toHaveLength(3);
    expect(h.st.replaying()).toBe(true);
    const after = [
      encodePgoutput({ tag: 'begin', finalLsn: 0x90n as Lsn, commitTs: 4n, xid: 51 }),
      encodePgoutput({ tag: 'commit', commitLsn: 0x90n as Lsn, endLsn: 0xa0n as Lsn, commitTs: 4n }),
    ];
    h.feed(...after);
    expect(h.out).toHaveLength(3);
    await h.release();
    expect(h.out.map((m) => (m.tag === 'insert' ? m.newTuple[0] : m.tag))).toEqual([
      'begin',
      '0',
      '1',
      '2',
      '3',
      '4',
      'commit',
      'begin',
      'commit',
    ]);
    expect(h.st.replaying()).toBe(false);
    expect(h.holds).toEqual([true, false]);
  });

  it('replays a spool that went to its file, including a change larger than the buffers, after cutting back into the file', () => {
    const h = harness();
    const big = 'y'.repeat(3 << 20);
    const row = 'z'.repeat(1000);
    h.feed(start(60, true), inStream(60, rel));
    for (let i = 0; i < 3000; i++) h.feed(inStream(60, ins(`a${i}${row}`)));
    h.feed(inStream(61, ins(`sub${row}`)));
    for (let i = 0; i < 3000; i++) h.feed(inStream(61, ins(`s${i}${row}`)));
    h.feed(stop(), streamAbort(60, 61));
    h.feed(start(60, false), inStream(60, ins(big)));
    for (let i = 0; i < 2000; i++) h.feed(inStream(60, ins(`b${i}${row}`)));
    h.feed(stop(), streamCommit(60, 0x1000n, 0x1100n, 9n));
    const ids = h.out.filter((m) => m.tag === 'insert').map((m) => (m.tag === 'insert' ? m.newTuple[0] : ''));
    expect(ids).toHaveLength(3000 + 1 + 2000);
    expect(ids[0]).toBe(`a0${row}`);
    expect(ids[2999]).toBe(`a2999${row}`);
    expect(ids[3000]).toBe(big);
    expect(ids[5000]).toBe(`b1999${row}`);
    expect(h.out.filter((m) => m.tag === 'relation')).toHaveLength(1);
    expect(h.out.at(-1)).toEqual({ tag: 'commit', commitLsn: 0x1000n, endLsn: 0x1100n, commitTs: 9n });
  });

  it('fails, and hands nothing on after, for a stream that continues a transaction it never saw start', () => {
    const h = harness();
    h.feed(start(70, false), inStream(70, ins('1')), stop());
    expect(h.failures).toHaveLength(1);
    expect(h.failures[0]).toBeInstanceOf(DecodeError);
    expect(h.failures[0]?.message).toMatch(/transaction 70 continued/);
    h.feed(encodePgoutput({ tag: 'begin', finalLsn: 0x10n as Lsn, commitTs: 1n, xid: 71 }));
    expect(h.out).toEqual([]);
  });

  it('fails on a message it does not know inside a stream, and on the commit of a transaction never streamed', () => {
    const h = harness();
    h.feed(start(71, true), Buffer.from([0x42, 0, 0]));
    expect(h.failures[0]?.message).toMatch(/unexpected message 0x42 inside the stream of transaction 71/);
    const h2 = harness();
    h2.feed(streamCommit(72, 1n, 2n, 3n));
    expect(h2.failures[0]?.message).toMatch(/never streamed/);
  });

  it('fails, instead of throwing from a microtask, when handing on breaks during a paced replay', async () => {
    const h = harness({ heldAfter: (n) => n === 2, throwAt: 4 });
    h.feed(start(90, true));
    for (let i = 0; i < 5; i++) h.feed(inStream(90, ins(String(i))));
    h.feed(stop(), streamCommit(90, 0x90n, 0x99n, 1n));
    expect(h.out).toHaveLength(2);
    await h.release();
    expect(h.failures.map((e) => e.message)).toEqual(['downstream broke']);
    expect(h.out).toHaveLength(3);
    // Closed: what still arrives is dropped, and its spool directory is gone.
    h.feed(encodePgoutput({ tag: 'begin', finalLsn: 0x10n as Lsn, commitTs: 1n, xid: 91 }));
    expect(h.out).toHaveLength(3);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('removes spool directories of replicators that no longer run', () => {
    const dead = join(dir, 'pgfleet-spool-999999999-abc');
    const mine = join(dir, `pgfleet-spool-${process.pid}-keep`);
    mkdirSync(dead);
    mkdirSync(mine);
    const h = harness();
    h.feed(start(80, true));
    expect(existsSync(dead)).toBe(false);
    expect(existsSync(mine)).toBe(true);
  });
});

describe('SpoolFile', () => {
  it('cuts back inside memory, inside the file, and reads back what is left', () => {
    const f = new SpoolFile(join(dir, 'f'));
    const rec = (i: number) => Buffer.from(`${i}:${'r'.repeat(5000)}`);
    const cutAt: number[] = [];
    for (let i = 0; i < 1000; i++) {
      cutAt.push(f.size);
      f.append(rec(i));
    }
    expect(f.onDisk).toBe(true);
    f.truncate(cutAt[700] as number);
    f.append(Buffer.from('after'));
    const next = f.reader();
    const got: string[] = [];
    for (let r = next(); r !== null; r = next()) got.push(r.toString().split(':')[0] as string);
    expect(got).toHaveLength(701);
    expect(got[699]).toBe('699');
    expect(got[700]).toBe('after');
    f.discard();
    expect(existsSync(join(dir, 'f'))).toBe(false);
  });
});
