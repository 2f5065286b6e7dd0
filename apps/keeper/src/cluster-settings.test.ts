import { overridesFromEnv } from '@pgfleet/cli';
import { describe, expect, it } from 'vitest';
import { CLUSTER_SETTINGS_KEYS, parseClusterSettings } from './cluster-settings.js';
import { configError } from './test-support/config-error.js';

const ctx = { nodeName: 'a', intervalMs: 1000, failures: 3 };
const members = [{ name: 'a' }, { name: 'b', conninfo: 'host=127.0.0.1 port=5433 user=postgres' }];
const etcd = { endpoints: ['http://127.0.0.1:2379', 'http://127.0.0.1:2380/'] };

describe('parseClusterSettings', () => {
  it('needs nothing for a pair: no DCS, default tags, an asynchronous cluster', () => {
    expect(parseClusterSettings({}, ctx)).toEqual({
      tags: { noFailover: false, failoverPriority: 1 },
      cluster: { name: 'pgfleet', syncCount: 0, failsafeMode: false, members: [] },
    });
  });

  it('resolves etcd with defaults derived from interval × failures', () => {
    const cluster = { members };
    // (failures + 2) × interval: one slow or failed renewal never costs a healthy leader its key.
    expect(parseClusterSettings({ dcs: { etcd }, cluster }, ctx).dcs).toEqual({
      etcd: {
        endpoints: ['http://127.0.0.1:2379', 'http://127.0.0.1:2380'],
        prefix: '/pgfleet',
        ttlSeconds: 5,
        requestTimeoutMs: 1000,
      },
    });
    expect(
      parseClusterSettings({ dcs: { etcd }, cluster }, { ...ctx, intervalMs: 500 }).dcs?.etcd,
    ).toMatchObject({
      ttlSeconds: 3,
      requestTimeoutMs: 500,
    });
  });

  it('on etcd, needs every member with a conninfo (standbys probe the primary before promoting)', () => {
    expect(() => parseClusterSettings({ dcs: { etcd } }, ctx)).toThrow(/cluster\.members.*every node/);
    expect(() =>
      parseClusterSettings({ dcs: { etcd }, cluster: { members: [{ name: 'a' }, { name: 'b' }] } }, ctx),
    ).toThrow(/member b needs a conninfo/);
  });

  it('takes endpoints as one comma-separated string (an environment variable)', () => {
    const raw = overridesFromEnv(
      {
        PGFLEET_KEEPER_DCS_ETCD_ENDPOINTS: 'http://10.0.0.1:2379, http://10.0.0.2:2379',
        PGFLEET_KEEPER_TAGS_NO_FAILOVER: 'true',
        PGFLEET_KEEPER_TAGS_FAILOVER_PRIORITY: '3',
        PGFLEET_KEEPER_CLUSTER_SYNC_COUNT: '1',
        PGFLEET_KEEPER_CLUSTER_MEMBERS:
          '[{name: a}, {name: b, conninfo: "host=10.0.0.2 user=postgres", keeperUrl: "http://10.0.0.2:8008"}]',
      },
      { prefix: 'PGFLEET_KEEPER_', keys: CLUSTER_SETTINGS_KEYS },
    );
    const s = parseClusterSettings(raw, ctx);
    expect(s.dcs?.etcd.endpoints).toEqual(['http://10.0.0.1:2379', 'http://10.0.0.2:2379']);
    expect(s.tags).toEqual({ noFailover: true, failoverPriority: 3 });
    expect(s.cluster).toEqual({
      name: 'pgfleet',
      syncCount: 1,
      failsafeMode: false,
      members: [
        { name: 'a' },
        { name: 'b', conninfo: 'host=10.0.0.2 user=postgres', keeperUrl: 'http://10.0.0.2:8008' },
      ],
    });
  });

  it.each<[string, Record<string, unknown>, string, RegExp]>([
    [
      'an endpoint that is not a URL',
      { dcs: { etcd: { endpoints: ['127.0.0.1:2379'] } } },
      'dcs.etcd.endpoints.0',
      /http/,
    ],
    ['no endpoint', { dcs: { etcd: { endpoints: [] } } }, 'dcs.etcd.endpoints', /at least one/],
    ['an unknown etcd key', { dcs: { etcd: { ...etcd, ttll: '3s' } } }, 'dcs.etcd', /unknown key "ttll"/],
    [
      'a ttl in fractions of a second',
      { dcs: { etcd: { ...etcd, ttl: '2500ms' } } },
      'dcs.etcd.ttl',
      /whole seconds/,
    ],
    [
      'a ttl shorter than a renewal cycle',
      { dcs: { etcd: { ...etcd, ttl: '2s', requestTimeout: '1s' } } },
      'dcs.etcd.ttl',
      /at least interval \+ 2 × requestTimeout \(3s\)/,
    ],
    [
      'a negative failoverPriority',
      { tags: { failoverPriority: -1 } },
      'tags.failoverPriority',
      /too small|>=0/,
    ],
    ['a noFailover that is not a boolean', { tags: { noFailover: 'maybe' } }, 'tags.noFailover', /./],
    [
      'a duplicate member',
      { cluster: { members: [{ name: 'a' }, { name: 'b' }, { name: 'b' }] } },
      'cluster.members.2.name',
      /duplicate member b/,
    ],
    [
      'a member list without this node',
      { cluster: { members: [{ name: 'b' }, { name: 'c' }] } },
      'cluster.members',
      /this node \(a\)/,
    ],
    [
      'more synchronous standbys than standbys',
      { dcs: { etcd }, cluster: { syncCount: 2, members: [{ name: 'a' }, { name: 'b' }] } },
      'cluster.syncCount',
      /2 synchronous standbys wanted but the cluster lists 1/,
    ],
    ['quorum commit without etcd', { cluster: { syncCount: 1 } }, 'cluster.syncCount', /needs dcs.etcd/],
  ])('rejects %s, naming the key', (_title, raw, key, message) => {
    const err = configError(() => parseClusterSettings(raw, ctx));
    expect(err.details.keys).toContain(key);
    expect(err.message).toMatch(message);
  });

  it('never echoes a member conninfo password in an error', () => {
    const err = configError(() =>
      parseClusterSettings(
        { cluster: { members: [{ name: 'a', conninfo: "host=x password=hunter22 bogus='" }] } },
        ctx,
      ),
    );
    expect(err.details.keys).toContain('cluster.members.0.conninfo');
    expect(err.message).not.toContain('hunter22');
  });
});
