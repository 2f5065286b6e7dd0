import type { Lsn } from '@pgfleet/wal';
import { describe, expect, it } from 'vitest';
import { type AppliedRun, CommitLedger } from './ledger.js';

const L = (n: number) => BigInt(n) as Lsn;
const entry = (end: number, rows = 1) => ({
  finalLsn: L(end - 8),
  endLsn: L(end),
  commitTs: BigInt(end),
  rows,
});

describe('CommitLedger', () => {
  it('confirms sent transactions in order, in runs, and only those at or before the position', () => {
    const runs: AppliedRun[] = [];
    const l = new CommitLedger(L(100), (r) => runs.push(r));
    for (const e of [110, 120, 130]) l.sent(entry(e, 2));
    l.confirmThrough(L(125));
    expect(runs).toEqual([{ transactions: 2, rows: 4, endLsn: L(120), commitTs: 120n }]);
    expect(l.lastApplied).toBe(L(120));
    expect(l.size).toBe(1);
    expect(l.oldest()?.endLsn).toBe(L(130));
    l.confirmThrough(L(120)); // already confirmed: nothing new
    expect(runs).toHaveLength(1);
    l.confirmThrough(L(1000));
    expect(l.size).toBe(0);
    expect(l.lastApplied).toBe(L(130));
  });

  it('keeps lastHandled ahead for skipped transactions without moving lastApplied', () => {
    const l = new CommitLedger(L(100), () => {});
    l.handled(L(150));
    expect(l.lastHandled).toBe(L(150));
    expect(l.lastApplied).toBe(L(100));
    l.sent(entry(160));
    l.confirmThrough(L(160));
    expect([l.lastApplied, l.lastHandled]).toEqual([L(160), L(160)]);
    l.committedWithoutData(L(170), 5n);
    expect([l.lastApplied, l.lastHandled, l.lastCommitTs]).toEqual([L(170), L(170), 5n]);
  });

  it('wakes a waiter once few enough are unconfirmed, and every waiter on release', async () => {
    const l = new CommitLedger(L(0), () => {});
    for (let i = 1; i <= 4; i++) l.sent(entry(i * 10));
    let woke = false;
    const w = l.whenBelow(2).then(() => {
      woke = true;
    });
    l.confirmThrough(L(20));
    await Promise.resolve();
    expect(woke).toBe(false); // 2 still unconfirmed
    l.confirmThrough(L(30));
    await w;
    expect(woke).toBe(true);
    const never = l.whenBelow(1);
    l.release();
    await never;
    expect(l.size).toBe(1);
  });

  it('compacts its queue without losing order over many transactions', () => {
    const l = new CommitLedger(L(0), () => {});
    for (let i = 1; i <= 5000; i++) l.sent(entry(i * 10));
    for (let i = 1; i <= 5000; i += 7) l.confirmThrough(L(i * 10));
    l.confirmThrough(L(49_990));
    expect(l.size).toBe(1);
    expect(l.oldest()?.endLsn).toBe(L(50_000));
  });
});
