import { connect } from '@pgfleet/connection';
import { testServer } from '@pgfleet/sandbox/vitest';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatLsn, lsnDiff, parseLsn } from './lsn.js';
import { createLogicalSlot, createPhysicalSlot, dropSlot, getSlot, listSlots, SlotError } from './slots.js';

// Slot names unique to this file and run: the shared server is used by other test files too.
const prefix = `wal_slots_${process.pid}_`;
const slotName = (s: string) => `${prefix}${s}`;

let client: pg.Client;

beforeAll(async () => {
  client = await connect(testServer().conninfo, { applicationName: 'wal-slots-test' });
});

afterAll(async () => {
  // A leftover logical slot would hold WAL (and catalog rows) back for every other test.
  if (!client) return;
  for (const slot of await listSlots(client)) {
    if (slot.name.startsWith(prefix)) await dropSlot(client, slot.name, { ifExists: true, force: true });
  }
  await client.end();
});

async function errorOf(promise: Promise<unknown>): Promise<SlotError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(SlotError);
    return err as SlotError;
  }
  throw new Error('expected a SlotError');
}

/** Opens a physical walsender streaming from `slot`, which makes the slot active. */
async function streamFrom(slot: string): Promise<pg.Client> {
  const walsender = await connect(testServer().conninfo, {
    replication: true,
    applicationName: `${slot}_consumer`,
  });
  walsender.on('error', () => {});
  const { rows } = await client.query('SELECT pg_current_wal_lsn()::text AS lsn');
  // Never resolves while streaming (CopyBoth); it rejects when the walsender is terminated.
  walsender.query(`START_REPLICATION SLOT ${slot} PHYSICAL ${rows[0].lsn}`).catch(() => {});
  for (let i = 0; i < 100; i++) {
    if ((await getSlot(client, slot))?.active) return walsender;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`slot ${slot} never became active`);
}

describe('physical slots', () => {
  it('creates a physical slot once and is a no-op the second time', async () => {
    const name = slotName('phys');
    const first = await createPhysicalSlot(client, name);
    expect(first).toEqual({ name, created: true, restartLsn: null });
    const second = await createPhysicalSlot(client, name, { reserve: true });
    expect(second).toEqual({ name, created: false, restartLsn: null });

    const slot = await getSlot(client, name);
    expect(slot).toMatchObject({
      name,
      type: 'physical',
      plugin: null,
      database: null,
      temporary: false,
      active: false,
      activePid: null,
      restartLsn: null,
      confirmedFlushLsn: null,
    });
    expect((await listSlots(client)).filter((s) => s.name === name)).toHaveLength(1);
  });

  it('reserves WAL immediately when asked: restart LSN is set and not after the current position', async () => {
    const name = slotName('phys_reserved');
    const created = await createPhysicalSlot(client, name, { reserve: true });
    expect(created.created).toBe(true);
    expect(created.restartLsn).not.toBeNull();
    const { rows } = await client.query('SELECT pg_current_wal_lsn()::text AS lsn');
    expect(lsnDiff(parseLsn(rows[0].lsn), created.restartLsn!)).toBeGreaterThanOrEqual(0n);

    const slot = await getSlot(client, name);
    expect(slot?.restartLsn).toBe(created.restartLsn);
    expect(slot?.walStatus).toBe('reserved');
    // Again: the existing slot's restart LSN comes back unchanged.
    expect(await createPhysicalSlot(client, name, { reserve: true })).toEqual({
      name,
      created: false,
      restartLsn: created.restartLsn,
    });
  });

  it('rejects names PostgreSQL would reject, before asking the server', async () => {
    for (const bad of ['', 'Upper', 'with-dash', 'x'.repeat(64), 'sp ace']) {
      const err = await errorOf(createPhysicalSlot(client, bad));
      expect(err.code).toBe('SLOT_NAME_INVALID');
    }
  });
});

describe('logical slots', () => {
  it('creates a pgoutput slot and returns its consistent point as an Lsn', async () => {
    const name = slotName('logical');
    const { rows } = await client.query('SELECT pg_current_wal_lsn()::text AS lsn');
    const before = parseLsn(rows[0].lsn);
    const created = await createLogicalSlot(client, name);
    expect(created.name).toBe(name);
    expect(created.created).toBe(true);
    expect(typeof created.consistentLsn).toBe('bigint');
    expect(created.consistentLsn >= before).toBe(true);

    const slot = await getSlot(client, name);
    const db = await client.query('SELECT current_database() AS db');
    expect(slot).toMatchObject({
      name,
      type: 'logical',
      plugin: 'pgoutput',
      database: db.rows[0].db,
      active: false,
      confirmedFlushLsn: created.consistentLsn,
      walStatus: 'reserved',
    });
    expect(slot?.restartLsn).not.toBeNull();
    expect(slot!.restartLsn! <= created.consistentLsn).toBe(true);
  });

  it('fails with SLOT_EXISTS on a second create, or returns the existing slot with ifNotExists', async () => {
    const name = slotName('logical_twice');
    const created = await createLogicalSlot(client, name, 'test_decoding');
    const err = await errorOf(createLogicalSlot(client, name, 'test_decoding'));
    expect(err.code).toBe('SLOT_EXISTS');
    expect(err.message).toContain(name);

    const again = await createLogicalSlot(client, name, 'test_decoding', { ifNotExists: true });
    expect(again).toEqual({ name, consistentLsn: created.consistentLsn, created: false });

    const conflict = await errorOf(createLogicalSlot(client, name, 'pgoutput', { ifNotExists: true }));
    expect(conflict.code).toBe('SLOT_CONFLICT');
    expect(formatLsn(again.consistentLsn)).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
  });

  it('refuses to treat a logical slot as the physical slot of the same name', async () => {
    const name = slotName('logical_not_phys');
    await createLogicalSlot(client, name);
    const err = await errorOf(createPhysicalSlot(client, name));
    expect(err.code).toBe('SLOT_CONFLICT');
    expect(err.details.existingType).toBe('logical');
  });
});

describe('dropSlot', () => {
  it('drops an inactive slot, then reports absence per ifExists', async () => {
    const name = slotName('drop_me');
    await createLogicalSlot(client, name);
    expect(await dropSlot(client, name)).toBe(true);
    expect(await getSlot(client, name)).toBeNull();
    expect(await dropSlot(client, name, { ifExists: true })).toBe(false);
    const err = await errorOf(dropSlot(client, name));
    expect(err.code).toBe('SLOT_NOT_FOUND');
  });

  it('leaves an active slot alone unless forced, and with force terminates its walsender and drops it', async () => {
    const name = slotName('active');
    await createPhysicalSlot(client, name, { reserve: true });
    const walsender = await streamFrom(name);
    try {
      const slot = await getSlot(client, name);
      expect(slot?.active).toBe(true);
      expect(slot?.activePid).toBeGreaterThan(0);

      const err = await errorOf(dropSlot(client, name));
      expect(err.code).toBe('SLOT_ACTIVE');
      expect(err.details.activePid).toBe(slot?.activePid);
      expect((await getSlot(client, name))?.active).toBe(true);

      expect(await dropSlot(client, name, { force: true })).toBe(true);
      expect(await getSlot(client, name)).toBeNull();
      const { rows } = await client.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = $1', [
        slot?.activePid,
      ]);
      expect(rows[0].n).toBe(0);
    } finally {
      await walsender.end().catch(() => {});
    }
  });
});
