import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { configFromEnv, parseConfig } from './config.js';
import { etcdSecurity } from './etcd-security.js';
import { configError } from './test-support/config-error.js';

/** The keeper configuration of a cluster on etcd: config.ts with cluster-settings.ts inside. */

const node = { name: 'a', conninfo: 'host=127.0.0.1 port=5432 user=postgres password=s3cret' };
const dcs = { etcd: { endpoints: ['http://127.0.0.1:2379'] } };

describe('parseConfig with dcs.etcd', () => {
  it('needs no peer: the members are on etcd (and, for probes, under cluster.members)', () => {
    const c = parseConfig({
      node,
      dcs,
      cluster: {
        name: 'main',
        members: [{ name: 'a' }, { name: 'b', conninfo: 'host=10.0.0.2 user=postgres' }],
      },
      tags: { failoverPriority: 2 },
    });
    expect(c.dcs?.etcd).toMatchObject({
      endpoints: ['http://127.0.0.1:2379'],
      prefix: '/pgfleet',
      ttlSeconds: 5,
    });
    expect(c.cluster).toEqual({
      name: 'main',
      syncCount: 0,
      failsafeMode: false,
      members: [{ name: 'a' }, { name: 'b', conninfo: 'host=10.0.0.2 user=postgres' }],
    });
    expect(c.tags).toEqual({ noFailover: false, failoverPriority: 2 });
    expect(c.peer).toEqual({ name: '', conninfo: '' });
  });

  it('keeps a pair without dcs as it was: peer required, default tags and cluster', () => {
    expect(configError(() => parseConfig({ node })).message).toMatch(
      /"peer.conninfo": required in node mode without dcs.etcd/,
    );
    const c = parseConfig({ node, peer: { name: 'b', conninfo: 'host=127.0.0.1 port=5433' } });
    expect(c.dcs).toBeUndefined();
    expect(c.tags).toEqual({ noFailover: false, failoverPriority: 1 });
  });

  it.each([
    [
      'a peer',
      { peer: { name: 'b', conninfo: 'host=x' } },
      'peer',
      /list the other nodes under cluster.members/,
    ],
    [
      'a witness',
      { witness: { url: 'http://127.0.0.1:8010' }, http: { token: '12345678' } },
      'witness.url',
      /etcd is the arbiter/,
    ],
    ['syncStandbyNames', { syncStandbyNames: 'ANY 1 (b, c)' }, 'syncStandbyNames', /from cluster.syncCount/],
    [
      'more synchronous standbys than members',
      { cluster: { syncCount: 2, members: [{ name: 'a' }, { name: 'b' }] } },
      'cluster.syncCount',
      /2 synchronous standbys wanted but the cluster lists 1 standby/,
    ],
    [
      'a member list without this node',
      { cluster: { members: [{ name: 'b' }] } },
      'cluster.members',
      /must list this node \(a\)/,
    ],
    [
      'failsafe mode without an HTTP token',
      { cluster: { failsafeMode: true, members: [{ name: 'a' }, { name: 'b', conninfo: 'host=x' }] } },
      'http.token',
      /required with cluster.failsafeMode/,
    ],
    [
      'a client certificate without its key',
      { dcs: { etcd: { endpoints: ['https://127.0.0.1:2379'], cert: '/etc/pgfleet/etcd.pem' } } },
      'dcs.etcd.key',
      /needs both dcs.etcd.cert and dcs.etcd.key/,
    ],
    [
      'a password without a user',
      { dcs: { etcd: { endpoints: ['http://127.0.0.1:2379'], password: 's3cret' } } },
      'dcs.etcd.username',
      /name its user/,
    ],
    [
      'a CA with plain http endpoints',
      { dcs: { etcd: { endpoints: ['http://127.0.0.1:2379'], cacert: '/etc/pgfleet/ca.pem' } } },
      'dcs.etcd.endpoints',
      /must all be https:\/\//,
    ],
    [
      'a bad endpoint',
      { dcs: { etcd: { endpoints: ['127.0.0.1:2379'] } } },
      'dcs.etcd.endpoints.0',
      /http:\/\//,
    ],
  ])('refuses %s, naming the key', (_what, extra, key, message) => {
    const err = configError(() => parseConfig({ node, dcs, ...extra }));
    expect(err.details?.keys).toContain(key);
    expect(err.message).toMatch(message);
    expect(err.message).not.toContain('s3cret');
  });

  it('takes the etcd endpoints and the tags from the environment', () => {
    const c = parseConfig({
      node,
      ...configFromEnv({
        PGFLEET_KEEPER_DCS_ETCD_ENDPOINTS: 'http://10.0.0.1:2379,http://10.0.0.2:2379',
        PGFLEET_KEEPER_TAGS_NO_FAILOVER: 'true',
        PGFLEET_KEEPER_CLUSTER_FAILSAFE_MODE: 'on',
        PGFLEET_KEEPER_HTTP_TOKEN: 'a-long-token',
        PGFLEET_KEEPER_CLUSTER_MEMBERS: '[{name: a}, {name: b, conninfo: "host=10.0.0.2 user=postgres"}]',
      }),
    });
    expect(c.dcs?.etcd.endpoints).toEqual(['http://10.0.0.1:2379', 'http://10.0.0.2:2379']);
    expect(c.tags.noFailover).toBe(true);
    expect(c.cluster.failsafeMode).toBe(true);
  });

  it('reads the etcd credentials once, naming the key of a file it cannot read', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pgfleet-etcd-sec-'));
    try {
      writeFileSync(join(dir, 'ca.pem'), 'CA PEM');
      const c = parseConfig({
        node,
        dcs: {
          etcd: {
            endpoints: ['https://127.0.0.1:2379'],
            cacert: join(dir, 'ca.pem'),
            username: 'pgfleet',
            password: 's3cret',
          },
        },
        cluster: { members: [{ name: 'a' }, { name: 'b', conninfo: 'host=x' }] },
      });
      expect(etcdSecurity(c.dcs!.etcd)).toEqual({ ca: 'CA PEM', username: 'pgfleet', password: 's3cret' });
      const missing = configError(() =>
        etcdSecurity({ ...c.dcs!.etcd, cert: join(dir, 'nope.pem'), key: join(dir, 'nope.key') }),
      );
      expect(missing.details?.keys).toEqual(['dcs.etcd.cert']);
      expect(missing.message).toMatch(/"dcs.etcd.cert": cannot read .*nope.pem \(ENOENT\)/);
      expect(missing.message).not.toContain('s3cret');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses failsafe mode without etcd', () => {
    const err = configError(() =>
      parseConfig({
        node,
        peer: { name: 'b', conninfo: 'host=127.0.0.1 port=5433' },
        cluster: { failsafeMode: true },
      }),
    );
    expect(err.details?.keys).toContain('cluster.failsafeMode');
    expect(err.message).toMatch(/failsafe mode is a mode of dcs.etcd/);
  });
});
