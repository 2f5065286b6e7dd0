import { describe, expect, it } from 'vitest';
import { judgeLeaderLease, type LeaderLeaseFacts } from './leader-lease-decision.js';

const BUDGET = 600;
const now = 10_000;

describe('judgeLeaderLease', () => {
  it.each<[string, LeaderLeaseFacts, string, Record<string, unknown>?]>([
    [
      'renewed: keep writing until the fence budget before the lease ends',
      { now, outcome: { kind: 'held', heldUntil: now + 3000 }, heldUntil: now + 2500, paused: false },
      'keep',
      { writeUntil: now + 3000 - BUDGET },
    ],
    [
      'etcd answered that another member holds the key: fence at once, whatever time is left',
      { now, outcome: { kind: 'lost', reason: 'b holds it (taken)' }, heldUntil: now + 2500, paused: false },
      'fence',
    ],
    [
      'etcd silent with time left: retry within the time left before the fence deadline',
      { now, outcome: { kind: 'unreachable', error: 'timeout' }, heldUntil: now + 2000, paused: false },
      'retry',
      { budgetMs: 2000 - BUDGET },
    ],
    [
      'etcd silent and the fence deadline reached: fence',
      { now, outcome: { kind: 'unreachable', error: 'timeout' }, heldUntil: now + BUDGET, paused: false },
      'fence',
    ],
    [
      'etcd silent, less than a useful retry left: fence',
      {
        now,
        outcome: { kind: 'unreachable', error: 'timeout' },
        heldUntil: now + BUDGET + 20,
        paused: false,
      },
      'fence',
    ],
    [
      'etcd silent and the key never held (a keeper starting): fence, nothing says it may write',
      { now, outcome: { kind: 'unreachable', error: 'ECONNREFUSED' }, heldUntil: null, paused: false },
      'fence',
    ],
    [
      'paused by the operator: no fence on a lost key',
      { now, outcome: { kind: 'lost', reason: 'b holds it' }, heldUntil: now + 2000, paused: true },
      'paused',
    ],
  ])('%s', (_what, facts, kind, fields = {}) => {
    const v = judgeLeaderLease(facts, BUDGET);
    expect(v.kind).toBe(kind);
    expect(v).toMatchObject(fields);
    expect(v.reason.length).toBeGreaterThan(10);
  });

  it('names the holder in the reason of a fence', () => {
    const v = judgeLeaderLease(
      { now, outcome: { kind: 'lost', reason: 'c holds it (taken)' }, heldUntil: now + 2000, paused: false },
      BUDGET,
    );
    expect(v.reason).toBe('fencing: the leader key is lost: c holds it (taken)');
  });
});
