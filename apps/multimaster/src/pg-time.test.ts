import { describe, expect, it } from 'vitest';
import { formatPgTimestamp, pgMicrosToUnixMs } from './pg-time.js';

describe('formatPgTimestamp', () => {
  it.each([
    [0n, '2000-01-01 00:00:00.000000+00'],
    [1n, '2000-01-01 00:00:00.000001+00'],
    [-1n, '1999-12-31 23:59:59.999999+00'],
    [757_382_400_123_456n, '2024-01-01 00:00:00.123456+00'],
  ])('%s µs → %s', (us, want) => {
    expect(formatPgTimestamp(us)).toBe(want);
  });
  it('converts to unix milliseconds', () => {
    expect(pgMicrosToUnixMs(0n)).toBe(Date.UTC(2000, 0, 1));
  });
});
