import { formatDuration } from './units.js';

/**
 * A primary on etcd writes only while its keeper holds the leader key: this is what keeps it
 * apart from a standby that wins the key after it. The key lives under the keeper's session
 * lease; etcd cannot drop it before `heldUntil` (the renewal's send time plus the TTL), and a
 * standby promotes only after it won the key. So the primary must have stopped taking writes
 * by `heldUntil`: its fence (SQL, then signals, then a hard stop: primary-guard.ts) needs up to
 * `fenceBudgetMs`, so the last moment to start it is `heldUntil − fenceBudgetMs`. Until then a
 * failed renewal is retried; a renewal answered "not yours" ends writes at once. Pure.
 */

export type RenewalOutcome =
  /** `failsafe`: not etcd but every member confirmed the leader (failsafe-decision.ts); why. */
  | { kind: 'held'; heldUntil: number; failsafe?: string }
  /** etcd answered: the key is gone with our lease, or another member holds it. */
  | { kind: 'lost'; reason: string }
  /** etcd did not answer in time (or not at all). */
  | { kind: 'unreachable'; error: string };

export interface LeaderLeaseFacts {
  now: number;
  outcome: RenewalOutcome;
  /** The last confirmed `heldUntil` (null: never held in this role). */
  heldUntil: number | null;
  /** Operator pause: no fencing on lease loss (Patroni's maintenance mode). */
  paused: boolean;
}

export type LeaderLeaseVerdict =
  /** Keep writing; the write lease (/primary 200) runs until `writeUntil`. */
  | { kind: 'keep'; writeUntil: number; reason: string }
  /** Try renewing again now, with at most `budgetMs` for the attempt. */
  | { kind: 'retry'; budgetMs: number; reason: string }
  /** Stop taking writes now. */
  | { kind: 'fence'; reason: string }
  /** Paused: writes go on without the key, as the operator asked. */
  | { kind: 'paused'; reason: string };

export function judgeLeaderLease(f: LeaderLeaseFacts, fenceBudgetMs: number): LeaderLeaseVerdict {
  const o = f.outcome;
  if (o.kind === 'held')
    return {
      kind: 'keep',
      writeUntil: o.heldUntil - fenceBudgetMs,
      reason: o.failsafe
        ? `failsafe mode: ${o.failsafe}`
        : `leader key renewed, held for ${formatDuration(o.heldUntil - f.now)}`,
    };
  if (f.paused)
    return {
      kind: 'paused',
      reason: `paused by operator: not fencing although the leader key ${describe(o)}`,
    };
  if (o.kind === 'lost') return { kind: 'fence', reason: `fencing: the leader key ${describe(o)}` };
  const fenceBy = f.heldUntil === null ? f.now : f.heldUntil - fenceBudgetMs;
  const left = fenceBy - f.now;
  // A retry shorter than this is not worth the round trip: fence instead.
  if (left >= 50)
    return {
      kind: 'retry',
      budgetMs: left,
      reason: `leader key not renewed (${o.error}); ${formatDuration(left)} left to renew before fencing`,
    };
  return {
    kind: 'fence',
    reason:
      f.heldUntil === null
        ? `fencing: no leader key held and etcd unreachable (${o.error})`
        : `fencing: the leader key could not be renewed before its lease ends (${o.error})`,
  };
}

function describe(o: RenewalOutcome): string {
  return o.kind === 'lost'
    ? `is lost: ${o.reason}`
    : `could not be renewed: ${o.kind === 'unreachable' ? o.error : ''}`;
}
