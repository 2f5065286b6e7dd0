import { quoteLiteral } from '@pgfleet/connection';
import type { ConflictPolicy } from '../config.js';
import { CONFLICT_KINDS, type ConflictKind } from '../conflict.js';

/** Rank of an unknown local origin, as resolveConflict has it (Number.MAX_SAFE_INTEGER). */
export const UNKNOWN_RANK = '9007199254740991';

/** SQL expressions a decision is computed from. */
export interface DecisionInputs {
  /** Commit time of the local version (timestamptz, NULL when unknown). */
  lts: string;
  /** Rank of the local version's origin (int8; UNKNOWN_RANK when unknown, never NULL). */
  lrank: string;
  /** Commit time of the remote change (timestamptz). */
  rts: string;
  /** Rank of the source node. */
  rrank: number;
}

/** A conflict's resolution ('apply' | 'skip' | 'error') and reason, as SQL text expressions. */
export interface DecisionSql {
  resolution: string;
  reason: string;
}

const lit = (s: string) => quoteLiteral(s);

/**
 * resolveConflict (conflict.ts) for one kind under one policy, written out as SQL over the
 * versions' commit times and ranks: the set-based apply decides in the statement that reads
 * the local row, with no function call per row. A table test keeps the two identical.
 */
export function decisionFor(kind: ConflictKind, policy: ConflictPolicy, v: DecisionInputs): DecisionSql {
  if (policy === 'error')
    return { resolution: lit('error'), reason: lit(`policy error: ${kind} stops the edge`) };
  switch (kind) {
    case 'update_missing':
      return {
        resolution: lit('skip'),
        reason: lit('row is gone locally: a delete wins over a concurrent update'),
      };
    case 'delete_missing':
      return { resolution: lit('skip'), reason: lit('row is already gone locally') };
    case 'delete_differs':
      return policy === 'keep_local'
        ? { resolution: lit('skip'), reason: lit('keep_local: local row kept') }
        : { resolution: lit('apply'), reason: lit('a delete wins over a concurrent update') };
    case 'insert_exists':
    case 'update_differs':
      break;
  }
  if (policy === 'apply_remote')
    return { resolution: lit('apply'), reason: lit('apply_remote: remote row applied') };
  if (policy === 'keep_local') return { resolution: lit('skip'), reason: lit('keep_local: local row kept') };
  const { lts, lrank, rts, rrank } = v;
  const later = policy === 'last_update_wins';
  const win = later
    ? `(${lts} IS NULL OR ${rts} > ${lts} OR (${rts} = ${lts} AND ${rrank} < ${lrank}))`
    : `(${lts} IS NOT NULL AND (${rts} < ${lts} OR (${rts} = ${lts} AND ${rrank} < ${lrank})))`;
  const [won, lost] = later
    ? ['remote change is later', 'local change is later']
    : ['remote change is earlier', 'local change is earlier'];
  return {
    resolution: `CASE WHEN ${win} THEN 'apply' ELSE 'skip' END`,
    reason:
      `CASE WHEN ${lts} = ${rts} THEN 'equal commit timestamps: rank ' || CASE WHEN ${win} THEN ${rrank} ELSE ${lrank} END || ' (lower) wins' ` +
      `WHEN ${lts} IS NULL THEN ${lit(later ? 'local commit timestamp unknown: remote row applied' : 'local commit timestamp unknown: local row kept')} ` +
      `WHEN ${win} THEN ${lit(won)} ELSE ${lit(lost)} END`,
  };
}

/**
 * decisionFor over a kind known only when the statement runs (`kind`, a text expression),
 * which is one of `kinds` (only those are written out: the expression is compiled each time
 * the statement runs).
 */
export function decisionSql(
  kind: string,
  policy: ConflictPolicy,
  v: DecisionInputs,
  kinds: readonly ConflictKind[] = CONFLICT_KINDS,
): DecisionSql {
  const each = kinds.map((k) => [k, decisionFor(k, policy, v)] as const);
  const pick = (f: keyof DecisionSql) =>
    `CASE ${kind} ${each.map(([k, d]) => `WHEN ${lit(k)} THEN ${d[f]}`).join(' ')} END`;
  return { resolution: pick('resolution'), reason: pick('reason') };
}
