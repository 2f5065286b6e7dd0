import { testServer } from '@pgfleet/sandbox/vitest';
import { describe, expect, it } from 'vitest';
import { connect } from './connect.js';
import { ConfigError } from './errors.js';

const server = testServer();

describe('no password anywhere', () => {
  it("is a ConfigError that says so, without node-pg's SASL internals", async () => {
    const noPassword = `host=${server.host} port=${server.port} user=${server.user} dbname=${server.database}`;
    const err = await connect(noPassword, { connectTimeoutMs: 5000, pgpass: { env: {} } }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(/the server asks for a password and none is given/);
    expect((err as Error).message).not.toMatch(/SASL|SCRAM/);
  });
});
