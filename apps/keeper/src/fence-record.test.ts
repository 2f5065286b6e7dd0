import { describe, expect, it } from 'vitest';
import { fenceAfterRead, initialState, noteFence } from './state.js';

describe("the keeper's record of its fence against reads of the server", () => {
  it('noteFence records the fence and its lifting, and counts both', () => {
    const s = initialState(0);
    noteFence(s, 'switchover to b');
    expect(s).toMatchObject({ fenced: true, fenceReason: 'switchover to b', fenceEpoch: 1 });
    noteFence(s, null);
    expect(s).toMatchObject({ fenced: false, fenceReason: null, fenceEpoch: 2 });
  });

  // The race seen in CI: the loop read the server while a switchover had it fenced, the
  // switchover failed and lifted the fence, then the loop copied its stale read.
  it.each([
    ['no fence change during the read: the server is believed', false, true, 'none', true],
    ['no fence change during the read: an unfenced server too', true, false, 'none', false],
    ['unfenced during a read that saw the fence: stays unfenced', true, true, 'unfence', false],
    ['fenced during a read that saw no fence: stays fenced', false, false, 'fence', true],
  ] as const)('%s', (_name, fencedBefore, serverFenced, during, expected) => {
    const s = initialState(0);
    if (fencedBefore) noteFence(s, 'earlier');
    const readEpoch = s.fenceEpoch;
    if (during === 'fence') noteFence(s, 'lease lost');
    if (during === 'unfence') noteFence(s, null);
    expect(fenceAfterRead(s, readEpoch, serverFenced)).toBe(expected);
  });
});
