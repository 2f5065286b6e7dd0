import { describe, expect, it } from 'vitest';
import { pause } from './pause.js';

describe('pause', () => {
  it('resolves after the delay', async () => {
    const t0 = performance.now();
    await pause(30);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(25);
  });

  it('resolves (never rejects) as soon as the signal aborts, or at once when it already has', async () => {
    const ctl = new AbortController();
    const t0 = performance.now();
    const p = pause(10_000, ctl.signal);
    ctl.abort(new Error('stop'));
    await expect(p).resolves.toBeUndefined();
    await expect(pause(10_000, ctl.signal)).resolves.toBeUndefined();
    expect(performance.now() - t0).toBeLessThan(5_000);
  });
});
