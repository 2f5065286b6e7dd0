import { describe, expect, it } from 'vitest';
import { isValidSlotName } from './slots.js';

describe('isValidSlotName (ReplicationSlotValidateName rules)', () => {
  it.each([
    ['pgfleet_a_b', true],
    ['s', true],
    ['0123456789', true],
    ['x'.repeat(63), true],
    ['', false],
    ['x'.repeat(64), false],
    ['Upper', false],
    ['with-dash', false],
    ['with space', false],
    ['dot.ted', false],
    ['émoji', false],
  ])('%j → %s', (name, valid) => {
    expect(isValidSlotName(name)).toBe(valid);
  });
});
