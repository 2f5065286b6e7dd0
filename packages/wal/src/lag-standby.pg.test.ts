import { connect } from '@pgfleet/connection';
import { Sandbox, type SandboxNode } from '@pgfleet/sandbox';
import { testServer } from '@pgfleet/sandbox/vitest';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { currentWalLsn, replicationLag, slotLag, standbyReplayState } from './lag.js';
import { type Lsn, lsnDiff } from './lsn.js';

// Lag as seen from both ends of real streaming replication: one small primary + standby pair.

let sb: Sandbox;
let primaryNode: SandboxNode;
let standbyNode: SandboxNode;
let primary: pg.Client;
let standby: pg.Client;

beforeAll(async () => {
  sb = await Sandbox.create({ name: 'wal-lag', major: testServer().major });
  primaryNode = await sb.startNode('p');
  standbyNode = await sb.createStandby('s', primaryNode, { slot: 's' });
  primary = await connect(primaryNode.conninfo(), { applicationName: 'wal-lag-primary' });
  standby = await connect(standbyNode.conninfo(), { applicationName: 'wal-lag-standby' });
  await primary.query('CREATE TABLE lag_t (id bigint primary key, payload text)');
});

afterAll(async () => {
  await primary?.end().catch(() => {});
  await standby?.end().catch(() => {});
  await sb?.destroy();
});

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function replayedUpTo(lsn: Lsn): Promise<void> {
  await until('standby replay', async () => {
    const state = await standbyReplayState(standby);
    return state?.replayLsn != null && state.replayLsn >= lsn ? true : undefined;
  });
}

describe('on a streaming standby', () => {
  it('currentWalLsn follows the primary through receive/replay (pg_current_wal_lsn would fail)', async () => {
    await primary.query(`INSERT INTO lag_t SELECT g, repeat('x', 100) FROM generate_series(1, 500) g`);
    const target = await currentWalLsn(primary);
    await replayedUpTo(target);
    const onStandby = await currentWalLsn(standby);
    expect(lsnDiff(onStandby, target)).toBeGreaterThanOrEqual(0n);
    await expect(standby.query('SELECT pg_current_wal_lsn()')).rejects.toThrow(/recovery/);
  });

  it('standbyReplayState reports receive/replay positions, a replay time and pausing', async () => {
    await primary.query(`INSERT INTO lag_t VALUES (100000, 'timed')`);
    const target = await currentWalLsn(primary);
    await replayedUpTo(target);
    const state = (await standbyReplayState(standby))!;
    expect(state.receiveLsn).not.toBeNull();
    expect(state.replayLsn! >= target).toBe(true);
    expect(state.replayPaused).toBe(false);
    expect(state.lastReplayAt).toBeInstanceOf(Date);
    expect(Math.abs(Date.now() - state.lastReplayAt!.getTime())).toBeLessThan(60_000);

    await standby.query('SELECT pg_wal_replay_pause()');
    try {
      expect((await standbyReplayState(standby))?.replayPaused).toBe(true);
      // While paused, new WAL is received but not replayed: the positions split apart.
      await primary.query(
        `INSERT INTO lag_t SELECT g, repeat('y', 100) FROM generate_series(200000, 200500) g`,
      );
      const ahead = await currentWalLsn(primary);
      const split = await until('receive ahead of replay', async () => {
        const s = (await standbyReplayState(standby))!;
        return s.receiveLsn !== null && s.receiveLsn >= ahead ? s : undefined;
      });
      expect(split.replayLsn! < ahead).toBe(true);
      // currentWalLsn on a standby takes the later of the two.
      expect(await currentWalLsn(standby)).toBe(split.receiveLsn);
    } finally {
      await standby.query('SELECT pg_wal_replay_resume()');
    }
    expect((await standbyReplayState(standby))?.replayPaused).toBe(false);
  });
});

describe('on the primary of a streaming standby', () => {
  it('replicationLag reports the standby with byte lag converging to 0 and seconds from replay_lag', async () => {
    await primary.query(`INSERT INTO lag_t SELECT g, 'z' FROM generate_series(300000, 300100) g`);
    const target = await currentWalLsn(primary);
    // replay_lag needs a sample: PostgreSQL shows NULL until the standby's reply covers WAL whose
    // send time was recorded, and again once it has been idle for a while (monitoring docs,
    // pg_stat_replication). So keep writing until a sample is there.
    let n = 300200;
    const row = await until('standby to report replay past the write, with a replay_lag sample', async () => {
      const r = (await replicationLag(primary)).find((x) => x.applicationName === 's');
      if (r?.replayLsn != null && r.replayLsn >= target && r.replayLagSeconds != null) return r;
      await primary.query(`INSERT INTO lag_t VALUES ($1, 'z')`, [n++]);
      return undefined;
    });
    expect(row.state).toBe('streaming');
    expect(row.syncState).toBe('async');
    for (const lsn of [row.sentLsn, row.writeLsn, row.flushLsn, row.replayLsn]) expect(lsn).not.toBeNull();
    expect(row.replayLagBytes).toBe(lsnDiff(row.currentLsn, row.replayLsn!));
    // One status message carries all three, and a standby replays only what it has flushed.
    expect(row.flushLagBytes! <= row.replayLagBytes!).toBe(true);
    // replay_lag is measured for WAL that was just replayed, so it is known and small right now.
    expect(row.replayLagSeconds).not.toBeNull();
    expect(row.replayLagSeconds!).toBeGreaterThanOrEqual(0);
    expect(row.replayLagSeconds!).toBeLessThan(30);

    // No more writes: once the standby confirms everything, lag is exactly zero bytes.
    const idle = await until('zero replay lag', async () => {
      const r = (await replicationLag(primary)).find((x) => x.applicationName === 's');
      return r?.replayLagBytes === 0n ? r : undefined;
    });
    expect(idle.flushLagBytes).toBe(0n);
  });

  it('slotLag shows the standby slot active and retaining little WAL once caught up', async () => {
    const slot = await until('slot s caught up', async () => {
      const s = (await slotLag(primary)).find((x) => x.name === 's');
      return s?.active && s.retainedBytes !== null ? s : undefined;
    });
    expect(slot.type).toBe('physical');
    expect(slot.confirmedLagBytes).toBeNull();
    expect(slot.retainedBytes! >= 0n).toBe(true);
    expect(slot.walStatus).toBe('reserved');
  });
});
