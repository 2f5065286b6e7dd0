/** How long to wait between retries. */
export interface BackoffPolicy {
  /** Delay before the first retry, before jitter. */
  baseDelayMs: number;
  /** Upper bound of any delay. */
  maxDelayMs: number;
  /** Growth per attempt (default 2). */
  factor?: number;
  /**
   * `equal` (default): half the capped delay plus a random half, so a retry never
   * hammers a server that is restarting, yet retries from many clients spread out.
   * `full`: anywhere in [0, capped delay]. `none`: exactly the capped delay.
   */
  jitter?: 'equal' | 'full' | 'none';
}

/**
 * Delay in milliseconds before retry number `attempt` (1 = first retry): exponential
 * growth from `baseDelayMs`, capped at `maxDelayMs`, then jittered with `random()` in [0, 1).
 * Pure: pass a fixed `random` to get a fixed answer.
 */
export function backoffDelay(
  attempt: number,
  policy: BackoffPolicy,
  random: () => number = Math.random,
): number {
  const factor = policy.factor ?? 2;
  const base = Math.max(0, policy.baseDelayMs);
  const max = Math.max(0, policy.maxDelayMs);
  const exp = Math.max(0, Math.floor(attempt) - 1);
  const capped = Math.min(max, base * factor ** exp);
  const r = Math.min(Math.max(random(), 0), 1);
  switch (policy.jitter ?? 'equal') {
    case 'none':
      return Math.round(capped);
    case 'full':
      return Math.round(capped * r);
    case 'equal':
      return Math.round(capped / 2 + (capped / 2) * r);
  }
}
