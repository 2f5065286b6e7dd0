import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { passwordLookup } from './password.js';

describe('passwordLookup (libpq order after the conninfo: PGPASSWORD, then the password file)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pgfleet-pgpass-'));
  const file = join(dir, 'pgpass');
  writeFileSync(
    file,
    ['db1:5432:*:alice:from-file', 'localhost:5433:app:bob:sock\\:et', '*:*:*:carol:any'].join('\n'),
  );
  chmodSync(file, 0o600);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  beforeEach(() => {
    vi.stubEnv('PGPASSFILE', file);
    // The pgpass module skips the file whenever PGPASSWORD exists, even empty.
    vi.stubEnv('PGPASSWORD', undefined);
  });
  afterEach(() => vi.unstubAllEnvs());

  it('is not needed when the conninfo has a password', () => {
    expect(passwordLookup({ password: 'x' }, { host: 'db1', port: 5432 })).toBeUndefined();
  });

  it.each([
    ['host, port and user match', { user: 'alice', dbname: 'd' }, { host: 'db1', port: 5432 }, 'from-file'],
    [
      'a unix socket matches "localhost", escapes are undone',
      { user: 'bob', dbname: 'app' },
      { host: '/run/pg', port: 5433 },
      'sock:et',
    ],
    ['wildcards', { user: 'carol' }, { host: 'elsewhere', port: 6000 }, 'any'],
    ['no entry', { user: 'dave' }, { host: 'db1', port: 5432 }, undefined],
  ])('%s', async (_name, params, target, want) => {
    const fn = passwordLookup(params, target);
    expect(await fn?.()).toBe(want);
  });

  it('PGPASSWORD wins over the file', async () => {
    vi.stubEnv('PGPASSWORD', 'env');
    const fn = passwordLookup({ user: 'alice' }, { host: 'db1', port: 5432 });
    expect(await fn?.()).toBe('env');
  });

  it('a file others can read is ignored, as libpq does', async () => {
    chmodSync(file, 0o644);
    try {
      const fn = passwordLookup({ user: 'alice' }, { host: 'db1', port: 5432 });
      expect(await fn?.()).toBeUndefined();
    } finally {
      chmodSync(file, 0o600);
    }
  });
});
