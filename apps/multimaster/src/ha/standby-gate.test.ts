import type { Lsn } from '@pgfleet/wal';
import { describe, expect, it } from 'vitest';
import { commitEndLsn, GatedStream } from './standby-gate.js';

function commit(end: bigint): Buffer {
  const b = Buffer.alloc(26);
  b.write('C', 0, 'latin1');
  b.writeBigUInt64BE(end - 8n, 2);
  b.writeBigUInt64BE(end, 10);
  b.writeBigInt64BE(0n, 18);
  return b;
}
const other = (tag: string, n: number) => Buffer.from(`${tag}${n}`, 'latin1');

/** A gate whose standby flush position the test moves by hand. */
function fakeGate() {
  let flushed = 0n;
  const waiters: Array<() => void> = [];
  return {
    passes: (end: Lsn) => flushed >= end,
    waitFlushed: (end: Lsn) =>
      new Promise<void>((resolve) => {
        const check = () => (flushed >= end ? resolve() : waiters.push(check));
        check();
      }),
    flush(to: bigint) {
      flushed = to;
      for (const w of waiters.splice(0)) w();
    },
  };
}

describe('GatedStream', () => {
  it('reads the end LSN of a Commit message only', () => {
    expect(commitEndLsn(commit(0x1000n))).toBe(0x1000n);
    expect(commitEndLsn(other('B', 1))).toBeNull();
  });

  it('holds a commit the standby lacks, with everything after it, in order, and the stream meanwhile', async () => {
    const gate = fakeGate();
    const got: string[] = [];
    const holds: boolean[] = [];
    const g = new GatedStream({
      gate,
      deliver: (m) => got.push(m[0] === 0x43 ? `C${commitEndLsn(m)}` : m.toString('latin1')),
      hold: (on) => holds.push(on),
      fail: (err) => {
        throw err;
      },
      signal: new AbortController().signal,
    });
    g.receive(other('B', 1));
    g.receive(other('I', 1));
    g.receive(commit(100n));
    const later = other('B', 2);
    g.receive(later);
    later.fill(0); // the stream reuses its buffer: what waits must be a copy
    g.receive(commit(200n));
    expect(got).toEqual(['B1', 'I1']);
    expect(holds).toEqual([true]);
    expect(g.pending()).toBe(3);
    gate.flush(150n);
    await new Promise((r) => setTimeout(r, 0));
    expect(got).toEqual(['B1', 'I1', 'C100', 'B2']);
    expect(g.pending()).toBe(1);
    gate.flush(200n);
    await new Promise((r) => setTimeout(r, 0));
    expect(got).toEqual(['B1', 'I1', 'C100', 'B2', 'C200']);
    expect(holds).toEqual([true, false]);
    g.receive(commit(180n));
    expect(got.at(-1)).toBe('C180');
  });
});
