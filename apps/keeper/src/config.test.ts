import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { configFromEnv, envName, loadConfig, parseConfig, parseListen } from './config.js';
import { configError } from './test-support/config-error.js';

const base = {
  node: { name: 'a', conninfo: 'host=127.0.0.1 port=5432 user=postgres password=s3cret' },
  peer: { name: 'b', conninfo: 'host=127.0.0.1 port=5433 user=postgres password=s3cret' },
};

describe('parseConfig', () => {
  it('fills the documented defaults', () => {
    const c = parseConfig(base);
    expect(c).toMatchObject({
      mode: 'node',
      intervalMs: 1000,
      failures: 3,
      connectTimeoutMs: 800,
      maxLagOnFailover: 1_048_576,
      startupGraceMs: 30_000,
      fenceAfterMs: 2000,
      syncStandbyNames: '',
      http: { host: '127.0.0.1', port: 8008 },
    });
  });

  it('converts durations and sizes', () => {
    const c = parseConfig({
      ...base,
      interval: '500ms',
      connectTimeout: '300ms',
      maxLagOnFailover: '16MiB',
      syncRestoreLag: '64kB',
      startupGrace: '2m',
    });
    expect(c).toMatchObject({
      intervalMs: 500,
      connectTimeoutMs: 300,
      maxLagOnFailover: 16 * 1024 * 1024,
      syncRestoreLag: 65_536,
      startupGraceMs: 120_000,
    });
  });

  it.each([
    [{ ...base, intervall: '1s' }, 'intervall', /unknown key "intervall"/],
    [{ ...base, node: { ...base.node, nmae: 'x' } }, 'node.nmae', /unknown key "node.nmae"/],
    [{ ...base, interval: '1 sec' }, 'interval', /"interval": bad duration/],
    [{ ...base, hooks: { timeout: 'soon' } }, 'hooks.timeout', /"hooks.timeout": bad duration/],
    [{ ...base, maxLagOnFailover: 'lots' }, 'maxLagOnFailover', /bad size/],
    [{ peer: base.peer }, 'node', /missing key "node"/],
    [{ ...base, node: { name: 'a' } }, 'node.conninfo', /"node.conninfo": required in node mode/],
    [{ node: base.node }, 'peer.conninfo', /required in node mode/],
    [{ ...base, failures: 0 }, 'failures', /"failures"/],
    [
      { ...base, peer: { ...base.peer, conninfo: 'host=x bogus_option=1 password=s3cret' } },
      'peer.conninfo',
      /not a valid conninfo/,
    ],
    [{ ...base, interval: '1s', connectTimeout: '2s' }, 'connectTimeout', /must not exceed interval/],
    [{ ...base, mode: 'both' }, 'mode', /"mode"/],
    [{ ...base, http: { listen: 'nowhere' } }, 'http.listen', /bad listen address/],
    [
      { ...base, peer: { ...base.peer, keeperUrl: 'http://127.0.0.1:8009' } },
      'http.token',
      /required when keepers/,
    ],
    [
      { ...base, witness: { url: 'http://w:8010' }, http: { token: 'tokentoken' }, fenceAfter: '3s' },
      'fenceAfter',
      /shorter than interval × failures/,
    ],
  ])('rejects %j naming %s', (raw, key, message) => {
    const err = configError(() => parseConfig(raw));
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.details.key).toBe(key);
    expect(err.message).toMatch(message);
  });

  it('never puts a password in an error message', () => {
    for (const raw of [
      { ...base, failures: 'many' },
      { ...base, node: { name: 'a', conninfo: "host=x password='s3cret" } },
      { ...base, node: { name: 'a', conninfo: 'postgres://u:s3cret@h/db?bogus=1' } },
    ]) {
      const err = configError(() => parseConfig(raw));
      expect(err.message).not.toContain('s3cret');
      expect(JSON.stringify(err.details)).not.toContain('s3cret');
    }
  });

  it('accepts witness mode with members and a token', () => {
    const c = parseConfig({
      mode: 'witness',
      node: { name: 'w' },
      members: { a: base.node.conninfo, b: base.peer.conninfo },
      http: { listen: '0.0.0.0:8010', token: 'tokentoken' },
    });
    expect(c.mode).toBe('witness');
    expect(Object.keys(c.members)).toEqual(['a', 'b']);
    expect(c.http).toEqual({ host: '0.0.0.0', port: 8010, token: 'tokentoken' });
  });
});

describe('env and flags', () => {
  it.each([
    ['node.name', 'PGFLEET_KEEPER_NODE_NAME'],
    ['peer.keeperUrl', 'PGFLEET_KEEPER_PEER_KEEPER_URL'],
    ['maxLagOnFailover', 'PGFLEET_KEEPER_MAX_LAG_ON_FAILOVER'],
    ['hooks.onPromote', 'PGFLEET_KEEPER_HOOKS_ON_PROMOTE'],
  ])('%s is read from %s', (key, name) => {
    expect(envName(key)).toBe(name);
  });

  it('rejects an unknown PGFLEET_KEEPER_ variable by name', () => {
    const err = configError(() => configFromEnv({ PGFLEET_KEEPER_INTERVALL: '1s' }));
    expect(err.details.key).toBe('PGFLEET_KEEPER_INTERVALL');
  });

  it('layers file < env < flags', () => {
    const dir = mkdtempSync(join(tmpdir(), 'keeper-config-'));
    const file = join(dir, 'k.yaml');
    writeFileSync(
      file,
      [
        'node:',
        '  name: a',
        `  conninfo: "${base.node.conninfo}"`,
        'peer:',
        '  name: b',
        `  conninfo: "${base.peer.conninfo}"`,
        'interval: 2s',
        'failures: 5',
        'syncStandbyNames: FIRST 1 (b)',
      ].join('\n'),
    );
    const c = loadConfig({
      file,
      env: { PGFLEET_KEEPER_INTERVAL: '750ms', PGFLEET_KEEPER_FAILURES: '4', HOME: '/root' },
      flags: { failures: '2', 'http-listen': '127.0.0.1:0' },
    });
    expect(c.intervalMs).toBe(750);
    expect(c.failures).toBe(2);
    expect(c.syncStandbyNames).toBe('FIRST 1 (b)');
    expect(c.http.port).toBe(0);
  });

  it('rejects an unknown flag and a missing file by name', () => {
    expect(configError(() => loadConfig({ flags: { colour: 'red' } })).details.key).toBe('colour');
    expect(configError(() => loadConfig({ file: '/nonexistent/k.yaml' })).message).toContain(
      '/nonexistent/k.yaml',
    );
  });
});

describe('parseListen', () => {
  it.each([
    ['127.0.0.1:8008', { host: '127.0.0.1', port: 8008 }],
    [':9000', { host: '127.0.0.1', port: 9000 }],
    ['[::1]:8008', { host: '::1', port: 8008 }],
    [8008, { host: '127.0.0.1', port: 8008 }],
    ['8008', { host: '127.0.0.1', port: 8008 }],
  ] as const)('%j', (input, out) => {
    expect(parseListen(input)).toEqual(out);
  });
  it.each(['host', 'h:99999', -1])('rejects %j', (input) => {
    expect(parseListen(input)).toBeUndefined();
  });
});
