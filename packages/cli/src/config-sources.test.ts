import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PgfleetError } from '@pgfleet/connection';
import { describe, expect, it } from 'vitest';
import {
  type ConfigKey,
  envVarName,
  flagName,
  mergeLayers,
  overridesFromEnv,
  overridesFromFlags,
  readConfigFile,
} from './config-sources.js';

const keys: ConfigKey[] = [
  { path: 'interval' },
  { path: 'failures', kind: 'integer' },
  { path: 'peer.keeperUrl' },
  { path: 'nodes', kind: 'yaml' },
];

function thrown(fn: () => unknown): PgfleetError {
  try {
    fn();
  } catch (err) {
    return err as PgfleetError;
  }
  throw new Error('expected an error');
}

describe('names', () => {
  it.each([
    ['peer.keeperUrl', 'PGFLEET_X_PEER_KEEPER_URL', 'peer-keeper-url'],
    ['maxLagOnFailover', 'PGFLEET_X_MAX_LAG_ON_FAILOVER', 'max-lag-on-failover'],
    ['apply.batchRows', 'PGFLEET_X_APPLY_BATCH_ROWS', 'apply-batch-rows'],
  ])('%s → %s, --%s', (path, env, flag) => {
    expect(envVarName('PGFLEET_X_', path)).toBe(env);
    expect(flagName(path)).toBe(flag);
  });
});

describe('overridesFromEnv', () => {
  it('maps variables to keys, coerces integers and parses YAML lists', () => {
    expect(
      overridesFromEnv(
        {
          PGFLEET_X_INTERVAL: '1s',
          PGFLEET_X_FAILURES: '4',
          PGFLEET_X_PEER_KEEPER_URL: 'http://k',
          PGFLEET_X_NODES: '[{name: a}, {name: b}]',
          HOME: '/root',
        },
        { prefix: 'PGFLEET_X_', keys },
      ),
    ).toEqual({
      interval: '1s',
      failures: 4,
      peer: { keeperUrl: 'http://k' },
      nodes: [{ name: 'a' }, { name: 'b' }],
    });
  });

  it('leaves a non-integer for the schema to reject by key', () => {
    expect(overridesFromEnv({ PGFLEET_X_FAILURES: 'many' }, { prefix: 'PGFLEET_X_', keys })).toEqual({
      failures: 'many',
    });
  });

  it('rejects an unknown variable by name unless the app handles it', () => {
    expect(
      thrown(() => overridesFromEnv({ PGFLEET_X_INTERVALL: '1s' }, { prefix: 'PGFLEET_X_', keys })).details
        .key,
    ).toBe('PGFLEET_X_INTERVALL');
    expect(
      overridesFromEnv(
        { PGFLEET_X_CONFIG: 'f' },
        { prefix: 'PGFLEET_X_', keys, handledElsewhere: (n) => n.endsWith('CONFIG') },
      ),
    ).toEqual({});
  });

  it('reports bad YAML without echoing the value (it may hold a password)', () => {
    const err = thrown(() =>
      overridesFromEnv({ PGFLEET_X_NODES: '[{conninfo: "password=s3cret"' }, { prefix: 'PGFLEET_X_', keys }),
    );
    expect(err.message).toMatch(/PGFLEET_X_NODES: not valid YAML/);
    expect(err.message).not.toContain('s3cret');
  });
});

describe('overridesFromFlags', () => {
  it('accepts kebab-case and dotted flags and rejects unknown ones by name', () => {
    expect(overridesFromFlags({ 'peer-keeper-url': 'u', failures: '2' }, keys)).toEqual({
      peer: { keeperUrl: 'u' },
      failures: 2,
    });
    expect(overridesFromFlags({ 'peer.keeperUrl': 'u' }, keys)).toEqual({ peer: { keeperUrl: 'u' } });
    expect(thrown(() => overridesFromFlags({ colour: 'red' }, keys)).message).toBe('unknown option --colour');
  });
});

describe('mergeLayers', () => {
  it('merges mappings deeply and replaces lists and scalars', () => {
    expect(
      mergeLayers({ a: { b: 1, c: 2 }, l: [1, 2], s: 'x' }, { a: { c: 3 }, l: [9] }, { s: 'y' }),
    ).toEqual({ a: { b: 1, c: 3 }, l: [9], s: 'y' });
  });
});

describe('readConfigFile', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pgfleet-cli-'));
  it('reads a mapping, treats an empty file as empty, and names the file on errors', () => {
    const good = join(dir, 'good.yaml');
    writeFileSync(good, 'interval: 1s\npeer:\n  name: b\n');
    expect(readConfigFile(good)).toEqual({ interval: '1s', peer: { name: 'b' } });
    const empty = join(dir, 'empty.yaml');
    writeFileSync(empty, '');
    expect(readConfigFile(empty)).toEqual({});
    const list = join(dir, 'list.yaml');
    writeFileSync(list, '- a\n- b\n');
    expect(thrown(() => readConfigFile(list)).message).toContain(`${list} must hold a mapping`);
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'a: b: c: password=s3cret\n');
    const err = thrown(() => readConfigFile(bad));
    expect(err.message).toContain(`${bad} is not valid YAML`);
    expect(err.message).not.toContain('s3cret');
    expect(thrown(() => readConfigFile(join(dir, 'missing.yaml'))).message).toContain(
      'cannot read config file',
    );
  });
});
