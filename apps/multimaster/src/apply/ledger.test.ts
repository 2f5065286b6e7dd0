import type { Lsn } from '@pgfleet/wal';
import { describe, expect, it } from 'vitest';
import { type AppliedRun, CommitLedger } from './ledger.js';

const L = (n: number) => BigInt(n) as Lsn;
const send = (l: CommitLedger, end: number, rows = 1) => l.sent(L(end), BigInt(end), rows);

describe('CommitLedger', () => {
  it('confirms sent transactions in order, in runs, and only those at or before the position', () => {
    const runs: AppliedRun[] = [];
    const l = new CommitLedger(L(100), (r) => runs.push(r));
    for (const e of [110, 120, 130]) send(l, e, 2);
    l.confirmThrough(L(125));
    expect(runs).toEqual([{ transactions: 2, rows: 4, endLsn: L(120), commitTs: 120n }]);
    expect(l.lastApplied).toBe(L(120));
    expect(l.size).toBe(1);
    expect(l.oldestEnd()).toBe(L(130));
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
    send(l, 160);
    l.confirmThrough(L(160));
    expect([l.lastApplied, l.lastHandled]).toEqual([L(160), L(160)]);
    l.committedWithoutData(L(170), 5n);
    expect([l.lastApplied, l.lastHandled, l.lastCommitTs]).toEqual([L(170), L(170), 5n]);
  });

  it('wakes a waiter once few enough are unconfirmed, and every waiter on release', async () => {
    const l = new CommitLedger(L(0), () => {});
    for (let i = 1; i <= 4; i++) send(l, i * 10);
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
    for (let i = 1; i <= 5000; i++) send(l, i * 10);
    for (let i = 1; i <= 5000; i += 7) l.confirmThrough(L(i * 10));
    l.confirmThrough(L(49_990));
    expect(l.size).toBe(1);
    expect(l.oldestEnd()).toBe(L(50_000));
  });

  it('reports every run as a plain queue would while sends and confirms interleave past its capacity', () => {
    const runs: AppliedRun[] = [];
    const l = new CommitLedger(L(0), (r) => runs.push(r));
    const model: number[] = []; // unconfirmed end LSNs; rows and commit time derive from them
    let next = 0;
    let seed = 7;
    let most = 0;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    for (let step = 0; step < 400; step++) {
      const sends = rand(step < 200 ? 300 : 40); // grows past 1024 unconfirmed, then drains
      for (let i = 0; i < sends; i++) {
        next += 10;
        model.push(next);
        l.sent(L(next), BigInt(next) * 3n, next % 5);
      }
      most = Math.max(most, model.length);
      // Early on most steps confirm nothing, so the queue grows past its arrays twice.
      const idle = step < 200 && step % 4 !== 0;
      const through = idle ? 0 : model.length === 0 ? next : (model[rand(model.length)] as number);
      const done = model.filter((e) => e <= through);
      runs.length = 0;
      l.confirmThrough(L(through));
      model.splice(0, done.length);
      if (done.length === 0) expect(runs).toEqual([]);
      else {
        const last = done[done.length - 1] as number;
        expect(runs).toEqual([
          {
            transactions: done.length,
            rows: done.reduce((a, e) => a + (e % 5), 0),
            endLsn: L(last),
            commitTs: BigInt(last) * 3n,
          },
        ]);
      }
      expect(l.size).toBe(model.length);
      expect(l.oldestEnd()).toBe(model.length ? L(model[0] as number) : undefined);
    }
    expect(most).toBeGreaterThan(2048);
    expect(l.size).toBeLessThan(most);
  });
});
