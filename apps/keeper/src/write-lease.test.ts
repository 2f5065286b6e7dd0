import { describe, expect, it } from 'vitest';
import {
  applyVerdict,
  describeLease,
  judgeLease,
  type LeaseEvidence,
  leaseHeld,
  NO_LEASE,
} from './write-lease.js';

const good = (over: Partial<LeaseEvidence> = {}): LeaseEvidence => ({
  localPrimary: true,
  localAccepting: true,
  myTimeline: 2,
  peers: [{ name: 'b', role: 'standby', fenced: false, timeline: 2 }],
  witness: 'none',
  ...over,
});
const peer = (role: 'primary' | 'standby' | 'down' | 'unknown', over = {}) => ({
  name: 'b',
  role,
  fenced: false,
  timeline: 2,
  ...over,
});

describe('judgeLease', () => {
  it.each<[string, Partial<LeaseEvidence>, string, RegExp]>([
    ['the standby answers as a standby', {}, 'renew', /b answers as a standby/],
    ['a fenced server', { localPrimary: false }, 'revoke', /not an unfenced primary/],
    ['a postmaster that takes no new connection', { localAccepting: false }, 'revoke', /no new connections/],
    [
      'a rival unfenced primary',
      { peers: [peer('primary')] },
      'revoke',
      /b answers as an unfenced primary too/,
    ],
    ['a rival on a newer timeline', { peers: [peer('primary', { timeline: 3 })] }, 'revoke', /timeline 3/],
    [
      'an old primary back on an older timeline is no rival (its keeper fences it)',
      { peers: [peer('primary', { timeline: 1 })] },
      'renew',
      /fenced or older primary/,
    ],
    ['a fenced primary peer is no rival', { peers: [peer('primary', { fenced: true })] }, 'renew', /fenced/],
    [
      'the witness voted for the standby',
      { peers: [peer('down')], witness: 'granted-to-peer' },
      'revoke',
      /granted its vote/,
    ],
    [
      'standby down, witness answers with no grant',
      { peers: [peer('down')], witness: 'ok' },
      'renew',
      /witness answers/,
    ],
    [
      'standby down, witness silent: no evidence, let it lapse',
      { peers: [peer('down')], witness: 'unreachable' },
      'lapse',
      /neither/,
    ],
    [
      'standby down, no witness: 2-node mode keeps writing',
      { peers: [peer('down')] },
      'renew',
      /2-node mode/,
    ],
  ])('%s', (_name, over, kind, reason) => {
    const v = judgeLease(good(over));
    expect(v.kind).toBe(kind);
    expect(v.reason).toMatch(reason);
  });
});

describe('the lease over time', () => {
  it('is held for leaseMs after a renewal, kept on a lapse, dropped on a revocation', () => {
    let l = applyVerdict(NO_LEASE, { kind: 'renew', reason: 'ok' }, 1000, 500);
    expect(leaseHeld(l, 1499)).toBe(true);
    l = applyVerdict(l, { kind: 'lapse', reason: 'no evidence' }, 1200, 500);
    expect(leaseHeld(l, 1499)).toBe(true);
    expect(leaseHeld(l, 1500)).toBe(false); // a stalled loop renews nothing: it ends by itself
    expect(describeLease(l, 1600)).toMatch(/^lapsed 100ms ago: no evidence/);
    l = applyVerdict(l, { kind: 'renew', reason: 'ok' }, 1600, 500);
    l = applyVerdict(l, { kind: 'revoke', reason: 'rival' }, 1700, 500);
    expect(leaseHeld(l, 1701)).toBe(false);
    expect(describeLease(l, 1701)).toBe('not held: rival');
  });
});
