import { describe, expect, it } from 'vitest';
import {
  decideStandby,
  INITIAL_WATCH,
  observePrimaryProbe,
  type StandbyFacts,
  type StandbyPolicy,
} from './standby-decision.js';

const policy: StandbyPolicy = {
  failures: 3,
  intervalMs: 1000,
  startupGraceMs: 30_000,
  maxLagOnFailover: 1024 * 1024,
  fenceAfterMs: 2000,
  syncRequired: false,
};

const seen = { consecutiveFailures: 3, primarySeenOnce: true, lastSeenAt: 96_000 };

const facts = (over: Partial<StandbyFacts> = {}): StandbyFacts => ({
  now: 100_000,
  startedAt: 0,
  primaryReachable: false,
  watch: seen,
  lagBytes: 0n,
  replayPaused: false,
  keeperPaused: false,
  peerReportedDown: false,
  sync: 'sync',
  witness: 'none',
  ...over,
});

describe('decideStandby', () => {
  it.each<[string, Partial<StandbyFacts>, Partial<StandbyPolicy>, string, RegExp]>([
    [
      'waits while the primary answers',
      { primaryReachable: true, watch: INITIAL_WATCH },
      {},
      'wait',
      /primary reachable/,
    ],
    [
      'waits below the failure count',
      { watch: { ...seen, consecutiveFailures: 2 } },
      {},
      'wait',
      /unreachable 2\/3/,
    ],
    [
      'promotes at the failure count',
      {},
      {},
      'promote',
      /^promoting: primary unreachable 3\/3, lag 0 B, gates passed/,
    ],
    ['keeper paused overrides everything', { keeperPaused: true }, {}, 'wait', /paused/],
    [
      'fast path: one failure after the peer keeper reports its server down',
      { peerReportedDown: true, watch: { ...seen, consecutiveFailures: 1 } },
      {},
      'promote',
      /unreachable 1\/1 \(its keeper reported it down\)/,
    ],
    [
      'fast path still needs the one confirming probe',
      { peerReportedDown: true, watch: { ...seen, consecutiveFailures: 0 } },
      {},
      'wait',
      /0\/1/,
    ],
    [
      'never-seen primary inside startupGrace blocks',
      { now: 10_000, watch: { consecutiveFailures: 9, primarySeenOnce: false } },
      {},
      'blocked',
      /never seen since start \(startupGrace 30s, 20s left\)/,
    ],
    [
      'never-seen primary after startupGrace may promote',
      { now: 31_000, watch: { consecutiveFailures: 9, primarySeenOnce: false }, sync: 'unknown' },
      { syncRequired: true },
      'promote',
      /gates passed/,
    ],
    [
      'lag over maxLagOnFailover blocks',
      { lagBytes: 3n * 1024n * 1024n },
      {},
      'blocked',
      /replay lag 3.0 MiB > maxLagOnFailover 1.0 MiB/,
    ],
    ['lag exactly at the limit promotes', { lagBytes: 1024n * 1024n }, {}, 'promote', /lag 1.0 MiB/],
    ['unknown lag blocks', { lagBytes: null }, {}, 'blocked', /replay lag unknown/],
    ['paused replay blocks', { replayPaused: true }, {}, 'blocked', /replay is paused/],
    [
      'degraded sync blocks',
      { sync: 'degraded' },
      { syncRequired: true },
      'blocked',
      /degraded synchronous replication/,
    ],
    [
      'async standby of a sync pair blocks',
      { sync: 'async' },
      { syncRequired: true },
      'blocked',
      /not synchronous/,
    ],
    ['async pair ignores sync status', { sync: 'async' }, { syncRequired: false }, 'promote', /gates passed/],
    [
      'witness: asks once gates pass',
      { witness: 'not-asked', now: 100_000, watch: { ...seen, lastSeenAt: 95_000 } },
      {},
      'ask-witness',
      /asking the witness/,
    ],
    [
      'witness: waits for the primary fence deadline',
      { witness: 'not-asked', now: 100_000, watch: { ...seen, lastSeenAt: 98_500 } },
      {},
      'blocked',
      /fence deadline \(1.5s left\)/,
    ],
    [
      'witness: granted promotes',
      { witness: 'granted', watch: { ...seen, lastSeenAt: 90_000 } },
      {},
      'promote',
      /witness granted/,
    ],
    [
      'witness: denied blocks with its reason',
      {
        witness: 'denied',
        witnessDetail: 'witness reaches primary a',
        watch: { ...seen, lastSeenAt: 90_000 },
      },
      {},
      'blocked',
      /witness denied its vote: witness reaches primary a/,
    ],
    [
      'witness: unreachable blocks',
      { witness: 'unreachable', watch: { ...seen, lastSeenAt: 90_000 } },
      {},
      'blocked',
      /witness unreachable/,
    ],
    [
      'all failing gates are listed',
      { lagBytes: 5_000_000n, replayPaused: true, sync: 'degraded' },
      { syncRequired: true },
      'blocked',
      /lag .*; replay is paused.*; not promotable/,
    ],
  ])('%s', (_name, over, pol, kind, reason) => {
    const action = decideStandby(facts(over), { ...policy, ...pol });
    expect(action.kind).toBe(kind);
    expect(action.reason).toMatch(reason);
  });
});

describe('observePrimaryProbe', () => {
  it('counts consecutive failures and resets on success', () => {
    let w = INITIAL_WATCH;
    w = observePrimaryProbe(w, { ok: false, error: 'refused' }, 1);
    w = observePrimaryProbe(w, { ok: false, error: 'timeout' }, 2);
    expect(w).toMatchObject({ consecutiveFailures: 2, primarySeenOnce: false, lastError: 'timeout' });
    w = observePrimaryProbe(w, { ok: true }, 3);
    expect(w).toEqual({ consecutiveFailures: 0, primarySeenOnce: true, lastSeenAt: 3 });
    w = observePrimaryProbe(w, { ok: false, error: 'x' }, 4);
    expect(w).toMatchObject({ consecutiveFailures: 1, primarySeenOnce: true, lastSeenAt: 3 });
  });
});
