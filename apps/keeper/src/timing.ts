import type { KeeperConfig } from './config.js';

/**
 * The time bounds that keep two writers apart, derived from the configuration in one place
 * (the README states them). With interval I, failures F, connectTimeout CT:
 *
 * - fenceAfter (default (F − 1) × I): a primary with no fresh evidence that it may write for
 *   this long stops writing: a server that takes no new connection is stopped hard, a keeper
 *   that was itself stalled fences with SQL, a primary cut off from standby and witness fences.
 * - escalation: once a fence starts, SQL gets this long to be confirmed before the keeper
 *   signals client backends directly, and as long again before it kills the server.
 * - promoteAfter = fenceAfter + I + escalation: a standby promotes only when it has not seen
 *   its primary answer for this long (besides F failed probes in a row), so the old primary
 *   stopped writing first even if its last answer to us came a whole interval before its own
 *   last evidence.
 * - lease = max(fenceAfter, 2 × I + CT): /primary answers 200 only while the keeper renewed
 *   its write lease this recently (two iterations with their probes, so a slow iteration on a
 *   loaded host does not make HAProxy drop a healthy primary); it lapses by itself when the
 *   loop stalls, and is revoked at once on evidence against it (which is what ends writes
 *   through HAProxy in every failure we know of: a dead, stopped or fenced server, a rival).
 * - serverWatch: how often the keeper checks that its own postmaster takes new connections
 *   (I / 2): a freeze shorter than fenceAfter − serverWatch is ridden out. The stop itself
 *   comes at most fenceAfter after the postmaster's last answer, whatever this period.
 */
export interface KeeperTiming {
  fenceAfterMs: number;
  escalationMs: number;
  promoteAfterMs: number;
  leaseMs: number;
  serverWatchMs: number;
  serverWatchTimeoutMs: number;
  /**
   * On etcd: how long before the leader key's lease ends the fence must start (SQL, then
   * signals, each given `escalation`, then the hard stop), so that writes end before any
   * standby can win the key.
   */
  leaderFenceBudgetMs: number;
}

export function keeperTiming(
  c: Pick<KeeperConfig, 'intervalMs' | 'connectTimeoutMs' | 'fenceAfterMs'>,
): KeeperTiming {
  const escalationMs = Math.round(Math.min(1000, Math.max(100, c.connectTimeoutMs / 2)));
  const serverWatchMs = Math.round(Math.min(500, Math.max(50, c.intervalMs / 2)));
  return {
    fenceAfterMs: c.fenceAfterMs,
    escalationMs,
    promoteAfterMs: c.fenceAfterMs + c.intervalMs + escalationMs,
    leaseMs: Math.max(c.fenceAfterMs, 2 * c.intervalMs + c.connectTimeoutMs),
    serverWatchMs,
    serverWatchTimeoutMs: Math.round(Math.min(c.connectTimeoutMs, Math.max(100, c.fenceAfterMs / 2))),
    leaderFenceBudgetMs: 2 * escalationMs + 200,
  };
}
