import type { DeadLetterPolicy } from './config.js';

/**
 * What the apply does with a transaction the target refused for a reason other than a
 * resolvable conflict (check/unique/not-null violation, bad value, policy `error`).
 * - record: whether the change(s) go to pgfleet.dead_letters.
 * - action: `skip_change` drops only the failing change and applies the rest (discard),
 *   `skip_transaction` drops the whole transaction, `pause` stops the edge until an
 *   operator fixes the cause or runs `pgfleet-mm skip`.
 * An operator's `skip` request for this very transaction always wins.
 */
export type DeadLetterAction = 'skip_change' | 'skip_transaction' | 'pause';

export interface DeadLetterDecision {
  action: DeadLetterAction;
  record: boolean;
}

export interface DeadLetterFacts {
  policy: DeadLetterPolicy;
  /** An operator asked to skip this transaction (`pgfleet-mm skip --edge --lsn`). */
  skipRequested: boolean;
  /** The failure is not about data (connection lost, server shutting down): retry instead. */
  transient: boolean;
  /** The failure is a schema mismatch (column missing on the target): never drop data for it. */
  schemaMismatch: boolean;
}

export function decideDeadLetter(f: DeadLetterFacts): DeadLetterDecision | 'retry' {
  if (f.transient) return 'retry';
  if (f.skipRequested) return { action: 'skip_transaction', record: true };
  if (f.schemaMismatch) return { action: 'pause', record: false };
  switch (f.policy) {
    case 'discard':
      return { action: 'skip_change', record: true };
    case 'skip_transaction':
      return { action: 'skip_transaction', record: true };
    case 'pause_edge':
      return { action: 'pause', record: true };
  }
}
