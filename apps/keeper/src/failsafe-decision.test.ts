import { describe, expect, it } from 'vitest';
import {
  type FailsafeRequestFacts,
  failsafeBlocksClaim,
  failsafeTargets,
  judgeFailsafe,
  judgeFailsafeRequest,
} from './failsafe-decision.js';

describe('failsafeTargets', () => {
  it('asks every member known from the snapshot, the configuration and the record, never itself', () => {
    const targets = failsafeTargets('a', {
      snapshot: [
        { name: 'a', keeperUrl: 'http://127.0.0.1:8001' },
        { name: 'c', keeperUrl: 'http://127.0.0.1:8003' },
      ],
      configured: [{ name: 'a' }, { name: 'b', keeperUrl: 'http://127.0.0.1:8002' }, { name: 'c' }],
      record: { d: 'http://127.0.0.1:8004', c: 'http://127.0.0.1:9999' },
    });
    expect(targets).toEqual([
      { name: 'b', url: 'http://127.0.0.1:8002' },
      // The URL the member published wins over the record's.
      { name: 'c', url: 'http://127.0.0.1:8003' },
      { name: 'd', url: 'http://127.0.0.1:8004' },
    ]);
  });

  it('keeps a member whose URL nobody knows: it cannot confirm, so failsafe cannot hold', () => {
    const targets = failsafeTargets('a', { snapshot: [], configured: [{ name: 'b' }], record: null });
    expect(targets).toEqual([{ name: 'b', url: null }]);
    expect(
      judgeFailsafe([{ name: 'b', confirmed: false, detail: 'no keeper URL known' }], 0, 3000, 'x'),
    ).toMatchObject({ kind: 'unreachable' });
  });
});

describe('judgeFailsafe', () => {
  const sentAt = 10_000;
  it.each([
    ['every member confirmed: held one TTL from the send time', [true, true], 'held'],
    ['one member refused: still unreachable, so the leader fences on time', [true, false], 'unreachable'],
    ['nobody confirmed', [false, false], 'unreachable'],
    ['nobody to ask: no confirmation', [], 'unreachable'],
  ])('%s', (_what, confirms, kind) => {
    const answers = confirms.map((ok, i) => ({
      name: `m${i}`,
      confirmed: ok,
      detail: ok ? 'confirmed' : 'HTTP 409 etcd names m9 as the leader',
    }));
    const o = judgeFailsafe(answers, sentAt, 3000, 'etcd: connection refused');
    expect(o.kind).toBe(kind);
    if (o.kind === 'held') expect(o.heldUntil).toBe(sentAt + 3000);
    if (o.kind === 'unreachable') {
      expect(o.error).toMatch(/^etcd: connection refused; failsafe/);
      for (const a of answers.filter((x) => !x.confirmed)) expect(o.error).toContain(a.name);
    }
  });
});

describe('judgeFailsafeRequest', () => {
  const base: FailsafeRequestFacts = {
    self: 'b',
    leader: 'a',
    primary: false,
    claiming: false,
    keyHolder: null,
  };
  it.each<[string, Partial<FailsafeRequestFacts>, boolean, RegExp?]>([
    ['a standby that sees no leader key confirms', {}, true],
    ['a standby that sees the asker holding the key confirms', { keyHolder: 'a' }, true],
    ['a member that runs a primary itself refuses', { primary: true }, false, /runs as a primary/],
    ['a member racing for the key refuses', { claiming: true }, false, /taking over the leader key/],
    ['a member that sees another leader in etcd refuses', { keyHolder: 'c' }, false, /etcd names c/],
    ['a request naming the member itself is refused', { leader: 'b' }, false, /itself/],
  ])('%s', (_what, facts, ok, reason) => {
    const v = judgeFailsafeRequest({ ...base, ...facts });
    expect(v.ok).toBe(ok);
    if (!v.ok && reason) expect(v.reason).toMatch(reason);
  });
});

describe('failsafeBlocksClaim', () => {
  it('a keeper that started less than one TTL ago waits it out while failsafe mode is on (its promises were in memory)', () => {
    const record = { a: 'http://127.0.0.1:1', b: 'http://127.0.0.1:2' };
    const facts = { self: 'b', promise: null, record, ttlMs: 3000, startedAt: 10_000 };
    expect(failsafeBlocksClaim({ ...facts, now: 12_000 })).toMatch(
      /started 2000 ms ago: it may have confirmed/,
    );
    expect(failsafeBlocksClaim({ ...facts, now: 13_000 })).toBeNull();
    // Failsafe mode off (no record, or an empty one): no wait after a restart.
    expect(failsafeBlocksClaim({ ...facts, record: {}, now: 10_001 })).toBeNull();
    expect(failsafeBlocksClaim({ ...facts, record: null, now: 10_001 })).toBeNull();
  });

  const now = 50_000;
  const base = { startedAt: 0, ttlMs: 3000 };
  it.each<[string, Omit<Parameters<typeof failsafeBlocksClaim>[0], 'startedAt' | 'ttlMs'>, RegExp | null]>([
    ['no promise, no record: free to claim', { self: 'b', now, promise: null, record: null }, null],
    [
      'a promise still running blocks the claim',
      { self: 'b', now, promise: { leader: 'a', until: now + 1 }, record: null },
      /confirmed a as the leader in failsafe mode/,
    ],
    [
      'a promise that ran out does not',
      { self: 'b', now, promise: { leader: 'a', until: now }, record: null },
      null,
    ],
    [
      'a record that does not list this member blocks the claim',
      { self: 'b', now, promise: null, record: { a: 'http://127.0.0.1:1', c: 'http://127.0.0.1:3' } },
      /does not list b/,
    ],
    [
      'a record listing this member lets it claim',
      { self: 'b', now, promise: null, record: { a: 'http://127.0.0.1:1', b: 'http://127.0.0.1:2' } },
      null,
    ],
    [
      'an empty record (failsafe mode off) lets it claim',
      { self: 'b', now, promise: null, record: {} },
      null,
    ],
  ])('%s', (_what, facts, blocked) => {
    const r = failsafeBlocksClaim({ ...base, ...facts });
    if (blocked === null) expect(r).toBeNull();
    else expect(r).toMatch(blocked);
  });
});
