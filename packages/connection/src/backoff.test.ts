import { describe, expect, it } from 'vitest';
import { type BackoffPolicy, backoffDelay } from './backoff.js';

const half = () => 0.5;
const zero = () => 0;
const almostOne = () => 0.999999;

describe('backoffDelay', () => {
  const p: BackoffPolicy = { baseDelayMs: 100, maxDelayMs: 1000 };
  const cases: Array<[string, number, BackoffPolicy, () => number, number]> = [
    ['first retry, equal jitter, mid random', 1, p, half, 75],
    ['first retry, equal jitter, random 0 keeps half', 1, p, zero, 50],
    ['first retry, equal jitter, random ~1', 1, p, almostOne, 100],
    ['doubles per attempt', 3, { ...p, jitter: 'none' }, half, 400],
    ['capped at max', 10, { ...p, jitter: 'none' }, half, 1000],
    ['huge attempt stays capped', 10_000, { ...p, jitter: 'none' }, half, 1000],
    ['full jitter can reach zero', 2, { ...p, jitter: 'full' }, zero, 0],
    ['full jitter mid', 2, { ...p, jitter: 'full' }, half, 100],
    ['custom factor', 3, { ...p, factor: 3, jitter: 'none' }, half, 900],
    ['attempt 0 treated as first', 0, { ...p, jitter: 'none' }, half, 100],
    ['zero base', 5, { baseDelayMs: 0, maxDelayMs: 10 }, half, 0],
    ['out-of-range random is clamped', 1, p, () => 7, 100],
  ];
  it.each(cases)('%s', (_name, attempt, policy, random, expected) => {
    expect(backoffDelay(attempt, policy, random)).toBe(expected);
  });

  it('stays within [capped/2, capped] for equal jitter with real randomness', () => {
    for (let attempt = 1; attempt <= 8; attempt++) {
      const capped = Math.min(1000, 100 * 2 ** (attempt - 1));
      for (let i = 0; i < 50; i++) {
        const d = backoffDelay(attempt, p);
        expect(d).toBeGreaterThanOrEqual(capped / 2);
        expect(d).toBeLessThanOrEqual(capped);
      }
    }
  });
});
