import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { testServer } from '@pgfleet/sandbox/vitest';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { connect } from './connect.js';
import { ConfigError } from './errors.js';

const server = testServer();

describe('passwords from ~/.pgpass, and none at all', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pgfleet-pgpass-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  afterEach(() => vi.unstubAllEnvs());
  const noPassword = () =>
    `host=${server.host} port=${server.port} user=${server.user} dbname=${server.database}`;

  it('connects with the password file, and node-pg prints no deprecation warning', async () => {
    const file = join(dir, 'pgpass');
    writeFileSync(file, `${server.host}:${server.port}:*:${server.user}:${server.password}\n`);
    chmodSync(file, 0o600);
    vi.stubEnv('PGPASSFILE', file);
    vi.stubEnv('PGPASSWORD', undefined);
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(`${w.name}: ${w.message}`);
    process.on('warning', onWarning);
    try {
      const client = await connect(noPassword(), { connectTimeoutMs: 5000 });
      expect((await client.query('SELECT 1 AS x')).rows).toEqual([{ x: 1 }]);
      await client.end();
      await new Promise((r) => setImmediate(r));
    } finally {
      process.off('warning', onWarning);
    }
    expect(warnings.filter((w) => /pgpass/i.test(w))).toEqual([]);
  });

  it('no password anywhere: a ConfigError that says so, without SASL internals', async () => {
    vi.stubEnv('PGPASSFILE', join(dir, 'absent'));
    vi.stubEnv('PGPASSWORD', undefined);
    const err = await connect(noPassword(), { connectTimeoutMs: 5000 }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(/the server asks for a password and none is given/);
    expect((err as Error).message).not.toMatch(/SASL|SCRAM/);
  });
});
