import { describe, expect, it } from 'vitest';
import {
  parseTargetSessionAttrs,
  type SessionFacts,
  sessionMatches,
  type TargetSessionAttrs,
} from './session-attrs.js';

const primary: SessionFacts = { inHotStandby: false, defaultReadOnly: false };
const fencedPrimary: SessionFacts = { inHotStandby: false, defaultReadOnly: true };
const standby: SessionFacts = { inHotStandby: true, defaultReadOnly: false };

describe('sessionMatches', () => {
  const cases: Array<[TargetSessionAttrs, SessionFacts, 1 | 2, boolean]> = [
    ['any', standby, 1, true],
    ['read-write', primary, 1, true],
    ['read-write', fencedPrimary, 1, false],
    ['read-write', standby, 1, false],
    ['read-only', fencedPrimary, 1, true],
    ['read-only', standby, 1, true],
    ['read-only', primary, 1, false],
    ['primary', fencedPrimary, 1, true],
    ['primary', standby, 1, false],
    ['standby', standby, 1, true],
    ['standby', primary, 1, false],
    ['prefer-standby', standby, 1, true],
    ['prefer-standby', primary, 1, false],
    ['prefer-standby', primary, 2, true],
  ];
  it.each(cases)('%s on %o (pass %s) → %s', (attrs, facts, pass, expected) => {
    expect(sessionMatches(attrs, facts, pass)).toBe(expected);
  });
});

describe('parseTargetSessionAttrs', () => {
  it('defaults to any', () => {
    expect(parseTargetSessionAttrs(undefined)).toBe('any');
  });
  it('rejects unknown values naming the allowed ones', () => {
    expect(() => parseTargetSessionAttrs('master')).toThrow(
      /invalid target_session_attrs value: "master".*read-write/,
    );
  });
});
