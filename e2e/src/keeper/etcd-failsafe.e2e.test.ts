import { EtcdCluster } from '@pgfleet/sandbox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type EtcdCluster3,
  etcdAvailable,
  judgeFailover,
  type Name,
  startEtcdCluster3,
  TIMING,
} from './etcd-fixture.js';
import { sleep, until } from './fixture.js';

/**
 * Issue 10, failsafe mode (Patroni's failsafe_mode) on a real 3-member etcd: when the leader
 * cannot renew its key it asks every member directly; confirmed by all, it keeps taking
 * writes; one member silent, and it fences before its key's lease ends. Watchers write on
 * every server directly every 50 ms: never two writers.
 */

const major = process.env.PGFLEET_PG_VERSION ?? '?';
const ttlMs = TIMING.ttlSeconds * 1000;

function decisions(cl: EtcdCluster3): string {
  return JSON.stringify(
    Object.fromEntries(
      (['a', 'b', 'c'] as Name[]).map((n) => [n, cl.keepers[n].handle.status().decision?.reason]),
    ),
  );
}

function promotions(cl: EtcdCluster3): number {
  return (['b', 'c'] as Name[]).reduce(
    (sum, n) => sum + cl.keepers[n].handle.status().counters.promotions,
    0,
  );
}

/** etcd answers again: a renews (or takes back) the key and both standbys follow it. */
async function aLeadsAgain(cl: EtcdCluster3): Promise<void> {
  await until(
    'a leads again through etcd and both standbys follow it',
    () =>
      cl.keepers.a.handle.status().decision?.reason === 'leading: leader key held' &&
      (['b', 'c'] as Name[]).every((n) =>
        cl.keepers[n].handle.status().decision?.reason.startsWith('following a'),
      ),
    30_000,
  );
}

describe.skipIf(!etcdAvailable())('keeper on etcd: failsafe mode', () => {
  let etcd: EtcdCluster;
  let n = 0;

  beforeAll(async () => {
    etcd = await EtcdCluster.start({ name: 'keeper-failsafe' });
  });

  afterAll(async () => {
    await etcd?.destroy();
  });

  it('etcd entirely down: every member confirms the primary, nothing changes roles, writes go on', async () => {
    const cl = await startEtcdCluster3(etcd, `down${++n}`, { failsafeMode: true });
    try {
      await sleep(1000);
      const downAt = Date.now();
      await etcd.killAll();
      // Well past the key's lease: without failsafe, a would have fenced by now.
      await sleep(ttlMs + 3000);
      // A point in time could fall on a retry of a slow answer: wait for the steady state.
      await until('a leads in failsafe mode, writable', () => {
        const sa = cl.keepers.a.handle.status();
        return (
          sa.role === 'primary' &&
          !sa.fenced &&
          sa.writable &&
          /failsafe mode: all 2 members confirm this primary/.test(sa.decision?.reason ?? '')
        );
      });
      const why = decisions(cl);
      expect(cl.keepers.a.handle.status().fenced, why).toBe(false);
      expect(promotions(cl), why).toBe(0);
      await etcd.restartAll();
      const etcdBackAt = Date.now();
      await aLeadsAgain(cl);
      const attempts = await cl.watch.stop();
      const f = judgeFailover(attempts, 'a', [], downAt);
      console.log(
        `keeper etcd e2e (PostgreSQL ${major}) failsafe, etcd down ${Math.round((etcdBackAt - downAt) / 1000)} s: ` +
          `a kept writing (last write ${f.lastOldAt === null ? '-' : Math.round(f.lastOldAt - downAt)} ms after etcd died), ` +
          `promotions ${promotions(cl)}, two-writer moments ${f.twoWriters.count}`,
      );
      expect(f.twoWriters.count, why).toBe(0);
      expect(f.lastOldAt, why).not.toBeNull();
      expect(f.lastOldAt!, why).toBeGreaterThan(downAt + ttlMs + 2000);
      await until('a writable through etcd again', () => cl.keepers.a.handle.status().writable);
    } finally {
      await etcd.restartAll().catch(() => undefined);
      await cl.stop();
    }
  });

  it('etcd down and one member silent: the primary is not confirmed by all and fences before its lease ends', async () => {
    const cl = await startEtcdCluster3(etcd, `silent${++n}`, { failsafeMode: true });
    try {
      await sleep(1000);
      // c's keeper goes away (its server still streams): it can confirm nothing.
      await cl.keepers.c.handle.stop();
      await sleep(500);
      const downAt = Date.now();
      await etcd.killAll();
      await until('a fences', () => cl.keepers.a.handle.status().fenced, ttlMs + 5000);
      await sleep(1000);
      const attempts = await cl.watch.stop();
      const f = judgeFailover(attempts, 'a', [], downAt);
      const why = decisions(cl);
      console.log(
        `keeper etcd e2e (PostgreSQL ${major}) failsafe, etcd down and c silent: a's last write ` +
          `${f.lastOldAt === null ? '-' : Math.round(f.lastOldAt - downAt)} ms after etcd died (lease ${ttlMs} ms)`,
      );
      expect(f.twoWriters.count, why).toBe(0);
      expect(f.lastOldAt, why).not.toBeNull();
      // Its key's lease was renewed at most one interval before etcd died.
      expect(f.lastOldAt! - downAt, why).toBeLessThan(ttlMs);
      expect(cl.keepers.a.handle.status().fenceReason ?? '', why).toMatch(/failsafe not confirmed by c/);
      expect(cl.keepers.b.handle.status().counters.promotions, why).toBe(0);
    } finally {
      await etcd.restartAll().catch(() => undefined);
      await cl.stop();
    }
  });

  it('primary cut off from etcd only: the standbys see the key expire but keep their promise; nobody promotes', async () => {
    const cl = await startEtcdCluster3(etcd, `cut${++n}`, { failsafeMode: true });
    try {
      await sleep(1000);
      const cutAt = Date.now();
      etcd.partition('keeper-a');
      await until(
        'both standbys see no leader key and refuse to take it (failsafe promise)',
        () =>
          (['b', 'c'] as Name[]).every((x) =>
            /confirmed a as the leader in failsafe mode/.test(
              cl.keepers[x].handle.status().decision?.reason ?? '',
            ),
          ),
        ttlMs + 10_000,
      );
      await sleep(2000);
      const why = decisions(cl);
      await until('a still leads, writable', () => {
        const sa = cl.keepers.a.handle.status();
        return sa.role === 'primary' && !sa.fenced && sa.writable;
      });
      expect(cl.keepers.a.handle.status().fenced, why).toBe(false);
      expect(promotions(cl), why).toBe(0);
      etcd.heal('keeper-a');
      await aLeadsAgain(cl);
      const attempts = await cl.watch.stop();
      const f = judgeFailover(attempts, 'a', [], cutAt);
      console.log(
        `keeper etcd e2e (PostgreSQL ${major}) failsafe, primary cut from etcd: no promotion, ` +
          `a's last write ${f.lastOldAt === null ? '-' : Math.round(f.lastOldAt - cutAt)} ms after the cut, two-writer moments ${f.twoWriters.count}`,
      );
      expect(f.twoWriters.count, why).toBe(0);
      // a wrote on, past the end of its key's lease (which the standbys saw expire).
      expect(f.lastOldAt!, why).toBeGreaterThan(cutAt + ttlMs + 1000);
    } finally {
      etcd.heal('keeper-a');
      await cl.stop();
    }
  });
});
