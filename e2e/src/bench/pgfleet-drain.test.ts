import { describe, expect, it } from 'vitest';
import { parseProcStatCpu } from './pgfleet-drain.js';

describe('parseProcStatCpu', () => {
  it.each([
    ['a plain name', '1234 (postgres) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 50 0 0 20 0 1 0 100', 3],
    [
      'a name with spaces and parentheses',
      '77 (postgres: walsender (x) y) R 1 77 77 0 -1 0 0 0 0 0 1234 66 0 0 20 0 1 0 5',
      13,
    ],
    ['a truncated line', '1234 (postgres) S 1', null],
  ])('reads %s', (_what, text, seconds) => {
    expect(parseProcStatCpu(text)).toBe(seconds);
  });
});
