import { EtcdCluster } from '@pgfleet/sandbox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lostAcknowledged } from '../support/write-ledger.js';
import {
  type EtcdCluster3,
  etcdAvailable,
  judgeFailover,
  type Name,
  startEtcdCluster3,
} from './etcd-fixture.js';
import { runCli, sleep, until, writeConfig } from './fixture.js';

/**
 * Issue 10: the operator's handovers on a 3-node etcd cluster, through the CLI: a switchover to
 * a named standby (not the one the ranking prefers), and `failover --candidate` while the
 * cluster is paused and the primary is gone with its keeper.
 */

const major = process.env.PGFLEET_PG_VERSION ?? '?';

async function streamsFrom(cl: EtcdCluster3, leader: Name, follower: Name): Promise<boolean> {
  const rows = await cl.nodes[leader].query<{ application_name: string }>(
    "SELECT application_name FROM pg_stat_replication WHERE state = 'streaming'",
  );
  return rows.some((r) => r.application_name === follower);
}

describe.skipIf(!etcdAvailable())('keeper on etcd: switchover and failover to a named candidate', () => {
  let etcd: EtcdCluster;

  beforeAll(async () => {
    etcd = await EtcdCluster.start({ name: 'keeper-e2e-handover' });
  });

  afterAll(async () => {
    await etcd?.destroy();
  });

  it('switchover --candidate c: c leads, b follows it, a stays fenced, nothing acknowledged lost; rejoin takes a back from etcd', async () => {
    const cl = await startEtcdCluster3(etcd, 'switch1');
    try {
      await sleep(500);
      const file = writeConfig(cl.raw.b);
      const startedAt = Date.now();
      const r = await runCli(['switchover', '--candidate', 'c', '--json', '--config', file], {}, 90_000);
      expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, promoted: 'c', timeline: 2 });
      await until('b follows c', () => streamsFrom(cl, 'c', 'b'), 30_000);
      await sleep(500);
      const attempts = await cl.watch.stop();
      const f = judgeFailover(attempts, 'a', ['c'], startedAt);
      const rows = await cl.nodes.c.query<{ writer: string; n: number }>('SELECT writer, n FROM ledger');
      const lost = lostAcknowledged(
        attempts.filter((x) => x.node === 'a'),
        new Set(rows.map((x) => `${x.writer}/${x.n}`)),
      );
      console.log(
        `keeper etcd e2e (PostgreSQL ${major}) switchover to c: a's last write ${f.lastOldAt === null ? '-' : Math.round(f.lastOldAt - startedAt)} ms, ` +
          `c's first ${f.ttfwMs} ms after the request (CLI start included), lost acknowledged ${lost.length}`,
      );
      expect(f.twoWriters.count).toBe(0);
      expect(lost).toEqual([]);
      expect(cl.keepers.b.handle.status()).toMatchObject({ role: 'standby', counters: { promotions: 0 } });
      expect(cl.keepers.a.handle.status()).toMatchObject({ role: 'primary', fenced: true, writable: false });
      const hist = await runCli(['history', '--json', '--config', file]);
      expect(JSON.parse(hist.stdout)).toMatchObject([{ timeline: 2, leader: 'c', previousLeader: 'a' }]);
      expect(JSON.parse(hist.stdout)[0].reason).toMatch(/^switchover from a to c \(operator\)/);
      if (!cl.sb.installation.hasRewind) return; // embedded PostgreSQL ships no pg_rewind
      // rejoin with no --primary-conninfo: the leader (c) and its conninfo come from etcd.
      const rejoined = await runCli(['rejoin', '--config', writeConfig(cl.raw.a)], {}, 120_000);
      expect(rejoined.code, `${rejoined.stdout}\n${rejoined.stderr}`).toBe(0);
      expect(rejoined.stdout).toMatch(/rejoining a as a standby of c \(timeline 2\)/);
      expect(rejoined.stdout).toMatch(/a is now a standby of c/);
      expect(`${rejoined.stdout}${rejoined.stderr}`).not.toContain(cl.nodes.a.facts().password);
      await until('a stopped by rejoin', () => !cl.nodes.a.isRunning);
      await cl.nodes.a.start();
      await until('a streams from c', () => streamsFrom(cl, 'c', 'a'), 30_000);
      await until('a follows c, unfenced', () => {
        const s = cl.keepers.a.handle.status();
        return s.role === 'standby' && !s.fenced && s.decision?.reason.startsWith('following c');
      });
      await cl.nodes.c.query("INSERT INTO ledger (writer, n) VALUES ('after-rejoin', 1)");
      await until(
        'a replays c',
        async () =>
          (await cl.nodes.a.query("SELECT 1 FROM ledger WHERE writer = 'after-rejoin'")).length === 1,
      );
    } finally {
      await cl.stop();
    }
  });

  it('failover --candidate c while paused: the primary and its keeper gone, c is promoted, b follows', async () => {
    const cl = await startEtcdCluster3(etcd, 'fail1');
    try {
      const file = writeConfig(cl.raw.b);
      expect((await runCli(['pause', '--config', file])).code).toBe(0);
      await until('every keeper sees the pause', () =>
        (['a', 'b', 'c'] as Name[]).every((x) => cl.keepers[x].handle.status().paused),
      );
      // The whole host of a is gone: keeper and server. Its leader key expires with its lease.
      await cl.keepers.a.handle.stop();
      const goneAt = Date.now();
      await cl.nodes.a.kill();
      await until(
        'the leader key expired',
        () => cl.keepers.b.handle.status().cluster?.leader === null,
        15_000,
      );
      await sleep(1000);
      expect(cl.keepers.b.handle.status().role).toBe('standby');
      expect(cl.keepers.c.handle.status().role).toBe('standby');
      const refused = await runCli(['failover', '--json', '--config', file]);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/failover needs --candidate/);
      const r = await runCli(['failover', '--candidate', 'c', '--json', '--config', file], {}, 90_000);
      expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, promoted: 'c', timeline: 2, forced: false });
      await until('b follows c', () => streamsFrom(cl, 'c', 'b'), 30_000);
      const attempts = await cl.watch.stop();
      const f = judgeFailover(attempts, 'a', ['c'], goneAt);
      expect(f.twoWriters.count).toBe(0);
      expect(cl.keepers.b.handle.status().counters.promotions).toBe(0);
      expect((await runCli(['resume', '--config', file])).code).toBe(0);
    } finally {
      await cl.stop();
    }
  });
});
