import { describe, expect, it } from 'vitest';
import { decideFence, type FenceFacts, type FencePolicy } from './fence-decision.js';

const withWitness: FencePolicy = { witnessConfigured: true, fenceAfterMs: 2000 };
const noWitness: FencePolicy = { witnessConfigured: false, fenceAfterMs: 2000 };

const facts = (over: Partial<FenceFacts> = {}): FenceFacts => ({
  now: 10_000,
  startedAt: 0,
  fenced: false,
  myTimeline: 1,
  peerRole: 'standby',
  peerTimeline: 1,
  lastStandbyContactAt: 9_500,
  lastWitnessContactAt: 9_500,
  witnessGrantedToPeer: false,
  holdFence: false,
  ...over,
});

describe('decideFence', () => {
  it.each<[string, Partial<FenceFacts>, FencePolicy, string, RegExp]>([
    ['steady state', {}, withWitness, 'none', /not fenced/],
    [
      'peer promoted on a newer timeline: fence at once',
      { peerRole: 'primary', peerTimeline: 2 },
      noWitness,
      'fence',
      /newer timeline 2 > 1/,
    ],
    [
      'already fenced for that: nothing more',
      { peerRole: 'primary', peerTimeline: 2, fenced: true },
      noWitness,
      'none',
      /fenced: peer is primary/,
    ],
    [
      'peer primary on an older timeline: it is the one to fence',
      { peerRole: 'primary', peerTimeline: 1, myTimeline: 2 },
      noWitness,
      'none',
      /not fenced/,
    ],
    [
      'witness voted for the peer: fence',
      { witnessGrantedToPeer: true },
      withWitness,
      'fence',
      /granted its vote/,
    ],
    [
      'isolated from standby and witness for fenceAfter: fence',
      { lastStandbyContactAt: 7_000, lastWitnessContactAt: 8_000, peerRole: 'unknown' },
      withWitness,
      'fence',
      /neither standby nor witness reachable for 2s/,
    ],
    [
      'isolated just under fenceAfter: not yet',
      { lastStandbyContactAt: 7_000, lastWitnessContactAt: 8_100, peerRole: 'unknown' },
      withWitness,
      'none',
      /not fenced/,
    ],
    [
      'witness still answers: no isolation fence',
      { lastStandbyContactAt: 1_000, lastWitnessContactAt: 9_900, peerRole: 'down' },
      withWitness,
      'none',
      /not fenced/,
    ],
    [
      'no witness: isolation never fences (2-node trade-off)',
      { lastStandbyContactAt: 0, lastWitnessContactAt: null, peerRole: 'down' },
      noWitness,
      'none',
      /not fenced/,
    ],
    [
      'fenced, peer is a standby again: unfence',
      { fenced: true },
      withWitness,
      'unfence',
      /peer is a standby/,
    ],
    [
      'fenced, witness answers without a vote for the peer: unfence',
      { fenced: true, peerRole: 'down' },
      withWitness,
      'unfence',
      /witness answers/,
    ],
    [
      'fenced, peer down, no witness: stay fenced',
      { fenced: true, peerRole: 'down' },
      noWitness,
      'none',
      /cannot confirm/,
    ],
    [
      'fenced on purpose for a switchover: stay fenced',
      { fenced: true, holdFence: true },
      withWitness,
      'none',
      /switchover/,
    ],
  ])('%s', (_name, over, policy, kind, reason) => {
    const action = decideFence(facts(over), policy);
    expect(action.kind).toBe(kind);
    expect(action.reason).toMatch(reason);
  });
});
