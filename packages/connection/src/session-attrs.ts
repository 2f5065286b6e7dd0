import { ConninfoError } from './errors.js';

/** libpq's target_session_attrs values. */
export type TargetSessionAttrs =
  | 'any'
  | 'read-write'
  | 'read-only'
  | 'primary'
  | 'standby'
  | 'prefer-standby';

const VALUES: readonly TargetSessionAttrs[] = [
  'any',
  'read-write',
  'read-only',
  'primary',
  'standby',
  'prefer-standby',
];

export function parseTargetSessionAttrs(value: string | undefined): TargetSessionAttrs {
  if (value === undefined || value === '') return 'any';
  if ((VALUES as readonly string[]).includes(value)) return value as TargetSessionAttrs;
  throw new ConninfoError(
    `invalid target_session_attrs value: "${value}" (expected one of ${VALUES.join(', ')})`,
    {
      keyword: 'target_session_attrs',
    },
  );
}

/**
 * What a fresh session tells about its server. Both come for free as ParameterStatus
 * messages on PostgreSQL 14+ (they are GUC_REPORT), which is how libpq decides too.
 */
export interface SessionFacts {
  /** `in_hot_standby`: the server is a standby in recovery. */
  inHotStandby: boolean;
  /** `default_transaction_read_only`: e.g. a fenced primary. */
  defaultReadOnly: boolean;
}

/**
 * Whether a session satisfies `attrs` during the given pass. libpq makes two passes
 * for `prefer-standby`: first only standbys are accepted, then anything.
 */
export function sessionMatches(attrs: TargetSessionAttrs, facts: SessionFacts, pass: 1 | 2 = 1): boolean {
  const readOnly = facts.inHotStandby || facts.defaultReadOnly;
  switch (attrs) {
    case 'any':
      return true;
    case 'read-write':
      return !readOnly;
    case 'read-only':
      return readOnly;
    case 'primary':
      return !facts.inHotStandby;
    case 'standby':
      return facts.inHotStandby;
    case 'prefer-standby':
      return pass === 2 || facts.inHotStandby;
  }
}
