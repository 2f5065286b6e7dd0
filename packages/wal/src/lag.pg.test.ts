import { connect } from '@pgfleet/connection';
import { testServer } from '@pgfleet/sandbox/vitest';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { currentWalLsn, replicationLag, slotLag, standbyReplayState } from './lag.js';
import { formatLsn, type Lsn, lsnDiff, parseLsn } from './lsn.js';
import { createLogicalSlot, createPhysicalSlot, dropSlot, getSlot } from './slots.js';

// Primary-side behaviour on the shared server; lag-standby.pg.test.ts covers a real standby.

const prefix = `wal_lag_${process.pid}_`;
const schema = `wal_lag_${process.pid}`;

let client: pg.Client;

beforeAll(async () => {
  client = await connect(testServer().conninfo, { applicationName: 'wal-lag-test' });
  await client.query(`CREATE SCHEMA ${schema}`);
  await client.query(`CREATE TABLE ${schema}.t (id bigint primary key, payload text)`);
});

afterAll(async () => {
  if (!client) return;
  for (const name of [`${prefix}phys`, `${prefix}logical`, `${prefix}streamed`]) {
    await dropSlot(client, name, { ifExists: true, force: true });
  }
  await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await client.end();
});

async function serverLsn(): Promise<Lsn> {
  const { rows } = await client.query('SELECT pg_current_wal_lsn()::text AS lsn');
  return parseLsn(rows[0].lsn);
}

async function writeRows(n: number, from: number): Promise<void> {
  await client.query(
    `INSERT INTO ${schema}.t SELECT g, repeat('x', 200) FROM generate_series($1::bigint, $2::bigint) g`,
    [from, from + n - 1],
  );
}

describe('currentWalLsn on a primary', () => {
  it('is pg_current_wal_lsn() and advances by at least the WAL a write produced', async () => {
    const before = await currentWalLsn(client);
    expect(lsnDiff(await serverLsn(), before)).toBeGreaterThanOrEqual(0n);
    await writeRows(1000, 1);
    const after = await currentWalLsn(client);
    // 1000 rows of ~200 bytes cannot fit in less than 200 kB of WAL.
    expect(lsnDiff(after, before)).toBeGreaterThan(200_000n);
    expect(lsnDiff(await serverLsn(), after)).toBeGreaterThanOrEqual(0n);
  });

  it('has no replay state: standbyReplayState() is null on a primary', async () => {
    expect(await standbyReplayState(client)).toBeNull();
  });
});

describe('slotLag', () => {
  it('reports the WAL each slot retains and what a logical consumer has not confirmed', async () => {
    const phys = `${prefix}phys`;
    const logical = `${prefix}logical`;
    const { restartLsn } = await createPhysicalSlot(client, phys, { reserve: true });
    const { consistentLsn } = await createLogicalSlot(client, logical);
    await writeRows(500, 10_000);

    const rows = (await slotLag(client)).filter((r) => r.name.startsWith(prefix));
    const byName = new Map(rows.map((r) => [r.name, r]));
    const p = byName.get(phys)!;
    const l = byName.get(logical)!;
    expect(p.type).toBe('physical');
    expect(p.restartLsn).toBe(restartLsn);
    expect(p.retainedBytes).toBe(lsnDiff(p.currentLsn, restartLsn!));
    expect(p.retainedBytes!).toBeGreaterThan(100_000n);
    expect(p.confirmedLagBytes).toBeNull();

    expect(l.type).toBe('logical');
    expect(l.confirmedFlushLsn).toBe(consistentLsn);
    expect(l.confirmedLagBytes).toBe(lsnDiff(l.currentLsn, consistentLsn));
    expect(l.confirmedLagBytes!).toBeGreaterThan(100_000n);
    expect(l.walStatus).toBe('reserved');

    // Cross-check our arithmetic with the server's.
    const server = await client.query(
      `SELECT pg_wal_lsn_diff($1::pg_lsn, restart_lsn)::text AS retained FROM pg_replication_slots WHERE slot_name = $2`,
      [formatLsn(p.currentLsn), phys],
    );
    expect(BigInt(server.rows[0].retained)).toBe(p.retainedBytes);
  });
});

describe('replicationLag on a primary', () => {
  it('lists a connected walsender with byte lag from our LSN math and null for positions it never reported', async () => {
    const name = `${prefix}streamed`;
    await createPhysicalSlot(client, name, { reserve: true });
    const appName = `${name}_consumer`;
    const walsender = await connect(testServer().conninfo, {
      replication: true,
      applicationName: appName,
    });
    walsender.on('error', () => {});
    try {
      const start = await serverLsn();
      walsender.query(`START_REPLICATION SLOT ${name} PHYSICAL ${formatLsn(start)}`).catch(() => {});
      let row: Awaited<ReturnType<typeof replicationLag>>[number] | undefined;
      for (let i = 0; i < 100 && !row?.sentLsn; i++) {
        row = (await replicationLag(client)).find((r) => r.applicationName === appName);
        if (!row?.sentLsn) await new Promise((r) => setTimeout(r, 50));
      }
      expect(row).toBeDefined();
      const slot = await getSlot(client, name);
      expect(row!.pid).toBe(slot?.activePid);
      expect(row!.state).toMatch(/^(startup|catchup|streaming)$/);
      expect(row!.syncState).toBe('async');
      expect(row!.sentLsn).not.toBeNull();
      expect(row!.sentLagBytes).toBe(lsnDiff(row!.currentLsn, row!.sentLsn!));
      // This consumer never sends standby status updates, so the server knows no write/flush/replay.
      expect(row!.replayLsn).toBeNull();
      expect(row!.replayLagBytes).toBeNull();
      expect(row!.replayLagSeconds).toBeNull();
    } finally {
      await dropSlot(client, name, { force: true });
      await walsender.end().catch(() => {});
    }
  });
});
