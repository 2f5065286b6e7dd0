import { describe, expect, it } from 'vitest';
import { percentile, summarize } from './stats.js';

describe('bench stats', () => {
  it.each([
    [[5, 1, 3], { n: 3, min: 1, median: 3, p99: 5, max: 5 }],
    [[4, 1, 3, 2], { n: 4, min: 1, median: 2.5, p99: 4, max: 4 }],
    [[7], { n: 1, min: 7, median: 7, p99: 7, max: 7 }],
  ])('summarizes %j', (values, expected) => {
    expect(summarize(values)).toEqual(expected);
  });

  it('takes the nearest-rank percentile', () => {
    const values = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(values, 50)).toBe(50);
    expect(percentile(values, 99)).toBe(99);
    expect(percentile(values, 100)).toBe(100);
  });
});
