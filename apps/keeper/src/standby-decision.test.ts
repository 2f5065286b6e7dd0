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
  promoteAfterMs: 3500,
  syncRequired: false,
};

const seen = { consecutiveFailures: 3, primarySeenOnce: true, lastSeenAt: 95_000 };

const facts = (over: Partial<StandbyFacts> = {}): StandbyFacts => ({
  now: 100_000,
  startedAt: 0,
  probe: { kind: 'silent', error: 'connection refused' },
  watch: seen,
  receiver: null,
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
      { probe: { kind: 'ok' }, watch: INITIAL_WATCH },
      {},
      'wait',
      /primary reachable/,
    ],
    [
      'a wrong password is an answer: alive, never a failure',
      { probe: { kind: 'answered', message: 'password authentication failed for user "postgres" (28P01)' } },
      {},
      'wait',
      /^primary answered: password authentication failed for user "postgres" \(28P01\); a server that answers is alive/,
    ],
    [
      'silent to probes but streaming WAL to us a moment ago: alive',
      { receiver: { streaming: true, lastMsgAgeMs: 120, probeAgeMs: 400, sender: '127.0.0.1:5432' } },
      {},
      'wait',
      /streams WAL to this standby \(last message 120 ms ago\): alive/,
    ],
    [
      'a message from before the probe proves nothing (the whole server froze after sending it)',
      { receiver: { streaming: true, lastMsgAgeMs: 410, probeAgeMs: 400, sender: '127.0.0.1:5432' } },
      {},
      'promote',
      /gates passed/,
    ],
    [
      'a walreceiver that heard nothing for an interval proves nothing (frozen host)',
      { receiver: { streaming: true, lastMsgAgeMs: 1500, probeAgeMs: 400, sender: '127.0.0.1:5432' } },
      {},
      'promote',
      /gates passed/,
    ],
    [
      'the fast path trusts the primary keeper over a walreceiver that has not noticed yet',
      {
        peerReportedDown: true,
        watch: { ...seen, consecutiveFailures: 1, lastSeenAt: 99_900 },
        receiver: { streaming: true, lastMsgAgeMs: 5, probeAgeMs: 400, sender: '127.0.0.1:5432' },
      },
      {},
      'promote',
      /its keeper reported it down/,
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
      'never-seen primary after startupGrace may promote in 2-node mode, and the reason says the risk',
      { now: 31_000, watch: { consecutiveFailures: 9, primarySeenOnce: false }, sync: 'unknown' },
      { syncRequired: true },
      'promote',
      /gates passed \(no witness: 2-node mode, primary never seen since start and startupGrace ran out: if peer.conninfo is wrong this makes two primaries\)/,
    ],
    [
      'never-seen primary, 2-node mode, but our walreceiver streams: peer.conninfo is wrong, no promotion',
      {
        now: 31_000,
        watch: { consecutiveFailures: 9, primarySeenOnce: false },
        receiver: { streaming: true, lastMsgAgeMs: 20_000, probeAgeMs: 400, sender: '127.0.0.1:5432' },
      },
      {},
      'blocked',
      /never answered since start, yet this standby's walreceiver streams from 127.0.0.1:5432: peer.conninfo does not reach/,
    ],
    [
      'never-seen primary with a witness: startupGrace does not replace the vote',
      { now: 31_000, watch: { consecutiveFailures: 9, primarySeenOnce: false }, witness: 'not-asked' },
      { startupGraceMs: 0 },
      'ask-witness',
      /asking the witness/,
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
    [
      'a standby no commit could be acknowledged without promotes, streaming or not',
      { sync: 'required' },
      { syncRequired: true },
      'promote',
      /gates passed/,
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
      /fence deadline \(2s left\)/,
    ],
    [
      '2-node mode waits for the fence deadline too (the old primary stops writing first)',
      { watch: { ...seen, lastSeenAt: 97_000 } },
      {},
      'blocked',
      /fence deadline \(500ms left\)/,
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

  it('a blocked decision keeps its log key while only its countdown changes', () => {
    const at = (now: number) => decideStandby(facts({ now, watch: { ...seen, lastSeenAt: 99_000 } }), policy);
    const [one, two] = [at(100_000), at(100_500)];
    expect(one.reason).not.toBe(two.reason);
    expect(one.key).toBe(two.key);
    const other = decideStandby(
      facts({ now: 100_000, replayPaused: true, watch: { ...seen, lastSeenAt: 99_000 } }),
      policy,
    );
    expect(other.key).not.toBe(one.key);
  });
});

describe('observePrimaryProbe', () => {
  it('counts consecutive failures and resets on success', () => {
    let w = INITIAL_WATCH;
    w = observePrimaryProbe(w, { kind: 'silent', error: 'refused' }, 1);
    w = observePrimaryProbe(w, { kind: 'silent', error: 'timeout' }, 2);
    expect(w).toMatchObject({ consecutiveFailures: 2, primarySeenOnce: false, lastError: 'timeout' });
    w = observePrimaryProbe(w, { kind: 'ok' }, 3);
    expect(w).toEqual({ consecutiveFailures: 0, primarySeenOnce: true, lastSeenAt: 3 });
    w = observePrimaryProbe(w, { kind: 'silent', error: 'x' }, 4);
    expect(w).toMatchObject({ consecutiveFailures: 1, primarySeenOnce: true, lastSeenAt: 3 });
  });

  it('an answer of any kind is a sign of life: it resets the count and counts as seen', () => {
    let w = observePrimaryProbe(INITIAL_WATCH, { kind: 'silent', error: 'timeout' }, 1);
    w = observePrimaryProbe(w, { kind: 'answered', message: 'sorry, too many clients already (53300)' }, 2);
    expect(w).toEqual({ consecutiveFailures: 0, primarySeenOnce: true, lastSeenAt: 2 });
  });
});
