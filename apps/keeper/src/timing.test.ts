import { describe, expect, it } from 'vitest';
import { keeperTiming } from './timing.js';

describe('keeperTiming', () => {
  it.each([
    [
      'the README example, 500 ms × 3',
      500,
      400,
      1000,
      { escalationMs: 200, promoteAfterMs: 1700, leaseMs: 1400, serverWatchMs: 250 },
    ],
    [
      'the defaults, 1 s × 3',
      1000,
      800,
      2000,
      { escalationMs: 400, promoteAfterMs: 3400, leaseMs: 2800, serverWatchMs: 500 },
    ],
    [
      'tight test settings',
      300,
      250,
      600,
      { escalationMs: 125, promoteAfterMs: 1025, leaseMs: 850, serverWatchMs: 150 },
    ],
  ])('%s', (_name, intervalMs, connectTimeoutMs, fenceAfterMs, want) => {
    const t = keeperTiming({ intervalMs, connectTimeoutMs, fenceAfterMs });
    expect(t).toMatchObject(want);
    // The order the safety argument needs: the primary stops writing (fenceAfter, plus its
    // escalation) before the standby may promote.
    expect(t.fenceAfterMs + t.escalationMs).toBeLessThan(t.promoteAfterMs);
    expect(t.serverWatchMs).toBeLessThan(t.fenceAfterMs);
  });
});
