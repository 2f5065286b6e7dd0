import { ConfigError } from '@pgfleet/connection';
import { expect } from 'vitest';

/** Runs `fn`, expects it to throw a ConfigError, and returns that error. */
export function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}
