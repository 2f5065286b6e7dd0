import { describe, expect, it } from 'vitest';
import {
  decideVote,
  type Heartbeat,
  INITIAL_WITNESS_STATE,
  recordHeartbeat,
  type WitnessState,
} from './witness.js';

const members = ['a', 'b'];
const hb = (over: Partial<Heartbeat>): Heartbeat => ({
  node: 'a',
  role: 'primary',
  timeline: 1,
  standbyPromotable: true,
  fenced: false,
  writable: false,
  leaseMs: 0,
  at: 0,
  ...over,
});

describe('decideVote', () => {
  it.each<[string, WitnessState, { candidate: string; primary: string }, boolean, boolean, RegExp]>([
    [
      'grants when the witness cannot reach the primary either',
      INITIAL_WITNESS_STATE,
      { candidate: 'b', primary: 'a' },
      false,
      true,
      /cannot reach primary a/,
    ],
    [
      'denies when the witness reaches the primary',
      INITIAL_WITNESS_STATE,
      { candidate: 'b', primary: 'a' },
      true,
      false,
      /witness reaches primary a/,
    ],
    [
      'denies an unknown candidate',
      INITIAL_WITNESS_STATE,
      { candidate: 'x', primary: 'a' },
      false,
      false,
      /unknown candidate x/,
    ],
    [
      'denies when the primary last said its standby is not promotable',
      recordHeartbeat(INITIAL_WITNESS_STATE, hb({ standbyPromotable: false })),
      { candidate: 'b', primary: 'a' },
      false,
      false,
      /not promotable/,
    ],
    [
      'denies a second candidate while a grant stands',
      { heartbeats: {}, grant: { to: 'a', primary: 'b', at: 0 } },
      { candidate: 'b', primary: 'a' },
      false,
      false,
      /already granted to a/,
    ],
    [
      "denies while the primary's keeper holds its write lease (the candidate sees a partition)",
      recordHeartbeat(INITIAL_WITNESS_STATE, hb({ writable: true, leaseMs: 1000, at: 500 })),
      { candidate: 'b', primary: 'a' },
      false,
      false,
      /holds its write lease \(heartbeat 500 ms ago, lease 1000 ms\)/,
    ],
    [
      'grants once that lease ran out (the keeper went silent with its host)',
      recordHeartbeat(INITIAL_WITNESS_STATE, hb({ writable: true, leaseMs: 1000, at: 0 })),
      { candidate: 'b', primary: 'a' },
      false,
      true,
      /cannot reach primary a/,
    ],
    [
      'grants when the primary keeper last said it holds no lease (its postmaster is stuck)',
      recordHeartbeat(INITIAL_WITNESS_STATE, hb({ writable: false, leaseMs: 1000, at: 900 })),
      { candidate: 'b', primary: 'a' },
      false,
      true,
      /cannot reach primary a/,
    ],
    [
      'grants again to the same candidate (retry)',
      { heartbeats: {}, grant: { to: 'b', primary: 'a', at: 0 } },
      { candidate: 'b', primary: 'a' },
      false,
      true,
      /cannot reach/,
    ],
  ])('%s', (_name, state, req, primaryReachable, granted, reason) => {
    const d = decideVote(state, req, { now: 1000, members, primaryReachable });
    expect(d.granted).toBe(granted);
    expect(d.reason).toMatch(reason);
  });

  it('remembers a grant until the winner reports in as primary', () => {
    let d = decideVote(
      INITIAL_WITNESS_STATE,
      { candidate: 'b', primary: 'a' },
      { now: 1, members, primaryReachable: false },
    );
    expect(d.state.grant).toMatchObject({ to: 'b', primary: 'a' });
    const afterStandbyHb = recordHeartbeat(d.state, hb({ node: 'b', role: 'standby' }));
    expect(afterStandbyHb.grant?.to).toBe('b');
    const afterPrimaryHb = recordHeartbeat(afterStandbyHb, hb({ node: 'b', role: 'primary', timeline: 2 }));
    expect(afterPrimaryHb.grant).toBeNull();
    d = decideVote(
      afterPrimaryHb,
      { candidate: 'a', primary: 'b' },
      { now: 2, members, primaryReachable: false },
    );
    expect(d.granted).toBe(true);
  });
});
