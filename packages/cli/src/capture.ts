import { vi } from 'vitest';

/**
 * Captures what a CLI `main()` writes to stdout and stderr in a vitest test (the writes are
 * swallowed). Restore with `vi.restoreAllMocks()` in an afterEach.
 */
export function captureStdio(): { out(): string; err(): string } {
  let out = '';
  let err = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
    out += String(chunk);
    return true;
  });
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
    err += String(chunk);
    return true;
  });
  return { out: () => out, err: () => err };
}
