import { EtcdCluster } from '@pgfleet/sandbox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lostAcknowledged } from '../support/write-ledger.js';
import { etcdAvailable, judgeFailover, type Name, startEtcdCluster3 } from './etcd-fixture.js';
import { sleep, syncNames, until } from './fixture.js';

/**
 * Issue 10: quorum commit on a 3-node etcd cluster (`cluster.syncCount: 1`). The primary keeps
 * `ANY 1 (healthy standbys)`, drops a standby that stops and takes it back once it streams
 * again, and after a postmaster SIGKILL the promoted standby holds every write the old primary
 * acknowledged.
 */

const major = process.env.PGFLEET_PG_VERSION ?? '?';

describe.skipIf(!etcdAvailable())('keeper on etcd: quorum commit (ANY 1) on 1 primary + 2 standbys', () => {
  let etcd: EtcdCluster;

  beforeAll(async () => {
    etcd = await EtcdCluster.start({ name: 'keeper-e2e-sync' });
  });

  afterAll(async () => {
    await etcd?.destroy();
  });

  it('degrades and restores per standby, and a failover loses no acknowledged write', async () => {
    const cl = await startEtcdCluster3(etcd, 'sync1', { syncCount: 1 });
    try {
      const { a, c } = cl.nodes;
      await until(
        'a runs ANY 1 (b, c) and both standbys know they are synchronous',
        async () =>
          (await syncNames(a)) === 'ANY 1 (b, c)' &&
          cl.keepers.b.handle.status().sync.observation === 'sync' &&
          cl.keepers.c.handle.status().sync.observation === 'sync',
        20_000,
      );

      // Patroni's quorum health checks: the voters answer /quorum, the primary /read-only-quorum.
      const code = async (x: Name, path: string) =>
        (await fetch(`${cl.keepers[x].handle.url}${path}`, { signal: AbortSignal.timeout(5000) })).status;
      expect([await code('a', '/quorum'), await code('b', '/quorum'), await code('c', '/quorum')]).toEqual([
        503, 200, 200,
      ]);
      expect(await code('a', '/read-only-quorum')).toBe(200);
      expect(await code('a', '/leader')).toBe(200);
      expect(await code('b', '/leader')).toBe(503);

      // c stops: after the grace (failures × interval) it leaves the set; commits never waited on
      // it alone (b acknowledges), and no acknowledged write is lost below.
      const stoppedAt = Date.now();
      await c.stop('immediate');
      await until('c leaves the synchronous set', async () => (await syncNames(a)) === 'ANY 1 (b)', 20_000);
      const degradeMs = Date.now() - stoppedAt;
      await c.start();
      const startedAt = Date.now();
      await until(
        'c is back in the synchronous set',
        async () => (await syncNames(a)) === 'ANY 1 (b, c)',
        30_000,
      );
      const restoreMs = Date.now() - startedAt;
      await until(
        'c knows it is synchronous again',
        () => cl.keepers.c.handle.status().sync.observation === 'sync',
      );

      await sleep(500);
      const faultAt = Date.now();
      await a.kill();
      const leader = await until(
        'a standby promoted',
        () => (['b', 'c'] as Name[]).find((x) => cl.keepers[x].handle.status().role === 'primary'),
        30_000,
      );
      const follower: Name = leader === 'b' ? 'c' : 'b';
      await until(
        'the new primary takes the follower as its synchronous standby',
        async () => (await syncNames(cl.nodes[leader])) === `ANY 1 (${follower})`,
        30_000,
      );
      await sleep(500);
      const attempts = await cl.watch.stop();
      const promoted = (['b', 'c'] as Name[]).filter(
        (x) => cl.keepers[x].handle.status().counters.promotions > 0,
      );
      const f = judgeFailover(attempts, 'a', promoted, faultAt);
      const rows = await cl.nodes[leader].query<{ writer: string; n: number }>(
        'SELECT writer, n FROM ledger',
      );
      const present = new Set(rows.map((r) => `${r.writer}/${r.n}`));
      const lost = lostAcknowledged(
        attempts.filter((x) => x.node === 'a'),
        present,
      );
      console.log(
        `keeper etcd e2e (PostgreSQL ${major}) quorum ANY 1: degrade ${degradeMs} ms after the standby stopped, ` +
          `restore ${restoreMs} ms after it started; postmaster-kill: ${leader} promoted, first write ${f.ttfwMs} ms after the kill, ` +
          `lost acknowledged ${lost.length}/${attempts.filter((x) => x.ok && x.node === 'a').length}, two-writer moments ${f.twoWriters.count}`,
      );
      const why = JSON.stringify({ f, lost: lost.slice(0, 5) });
      expect(f.promoted, why).toEqual([leader]);
      expect(f.twoWriters.count, why).toBe(0);
      expect(lost, why).toEqual([]);
      expect(attempts.filter((x) => x.ok && x.node === 'a').length, why).toBeGreaterThan(20);
      expect(f.ttfwMs, why).not.toBeNull();
    } finally {
      await cl.stop();
    }
  });
});
