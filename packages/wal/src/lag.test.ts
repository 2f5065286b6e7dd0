import { describe, expect, it } from 'vitest';
import { lagBytes } from './lag.js';
import { parseLsn } from './lsn.js';

describe('lagBytes', () => {
  it.each([
    ['1/0', '0/FFFFFFFF', 1n],
    ['16/B374D848', '16/B374D848', 0n],
    ['16/B374D848', '0/0', 0x16b374d848n],
    // A standby position read a moment after `current` may be a little ahead: that is caught up.
    ['0/1000', '0/1008', 0n],
  ])('current %s, position %s → %s bytes behind', (current, position, expected) => {
    expect(lagBytes(parseLsn(current), parseLsn(position))).toBe(expected);
  });

  it('is null when the position is unknown', () => {
    expect(lagBytes(parseLsn('1/0'), null)).toBeNull();
  });
});
