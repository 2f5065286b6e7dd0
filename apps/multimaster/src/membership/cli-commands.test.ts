import { describe, expect, it } from 'vitest';
import { formatAddNodeProgress } from './cli-commands.js';

describe('formatAddNodeProgress', () => {
  it.each([
    [{ phase: 'catch-up' as const, message: 'waiting for a' }, 'catch-up: waiting for a'],
    [
      {
        phase: 'copy' as const,
        message: 'x',
        copy: { table: 'app.t', rows: 50, bytes: 2048, estimatedRows: 100, done: false },
      },
      'copy app.t [############............] 50% 50 rows, 2.0 KiB',
    ],
    [
      {
        phase: 'copy' as const,
        message: 'x',
        copy: { table: 'app.t', rows: 7, bytes: 10, estimatedRows: 0, done: true },
      },
      'copy app.t 7 rows, 10 B done',
    ],
    [
      {
        phase: 'copy' as const,
        message: 'x',
        copy: { table: 'app.t', rows: 300, bytes: 3 << 20, estimatedRows: 100, done: false },
      },
      'copy app.t [########################] 100% 300 rows, 3.0 MiB',
    ],
  ])('%o → %s', (p, want) => {
    expect(formatAddNodeProgress(p)).toBe(want);
  });
});
