import { connect } from '@pgfleet/connection';
import { testServer } from '@pgfleet/sandbox/vitest';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseLsn } from './lsn.js';
import {
  advanceOrigin,
  createOrigin,
  dropOrigin,
  listOrigins,
  OriginError,
  originProgress,
} from './origins.js';

const prefix = `wal_origins_${process.pid}_`;
const originName = (s: string) => `${prefix}${s}`;

let client: pg.Client;

beforeAll(async () => {
  client = await connect(testServer().conninfo, { applicationName: 'wal-origins-test' });
});

afterAll(async () => {
  if (!client) return;
  for (const origin of await listOrigins(client)) {
    if (origin.name.startsWith(prefix)) await dropOrigin(client, origin.name, { ifExists: true });
  }
  await client.end();
});

async function errorOf(promise: Promise<unknown>): Promise<OriginError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(OriginError);
    return err as OriginError;
  }
  throw new Error('expected an OriginError');
}

describe('replication origins', () => {
  it('creates an origin once and returns the same id the second time', async () => {
    const name = originName('create');
    const first = await createOrigin(client, name);
    expect(first.created).toBe(true);
    expect(first.id).toBeGreaterThan(0);
    const second = await createOrigin(client, name);
    expect(second).toEqual({ id: first.id, name, created: false });
    const { rows } = await client.query('SELECT pg_replication_origin_oid($1) AS id', [name]);
    expect(Number(rows[0].id)).toBe(first.id);
  });

  it('reports no progress before the first advance, then the advanced LSN (also with flush)', async () => {
    const name = originName('progress');
    await createOrigin(client, name);
    expect(await originProgress(client, name)).toBeNull();

    await advanceOrigin(client, name, parseLsn('16/B374D848'));
    expect(await originProgress(client, name)).toBe(parseLsn('16/B374D848'));
    // pg_replication_origin_advance() writes its own WAL record and is flushed by its commit.
    expect(await originProgress(client, name, { flush: true })).toBe(parseLsn('16/B374D848'));

    await advanceOrigin(client, name, parseLsn('17/0'));
    expect(await originProgress(client, name)).toBe(parseLsn('17/0'));

    const listed = (await listOrigins(client)).find((o) => o.name === name);
    expect(listed?.remoteLsn).toBe(parseLsn('17/0'));
  });

  it('lists origins with null progress until they advance', async () => {
    const name = originName('listed');
    const { id } = await createOrigin(client, name);
    const listed = (await listOrigins(client)).find((o) => o.name === name);
    expect(listed).toEqual({ id, name, remoteLsn: null, localLsn: null });
  });

  it('drops an origin, then reports absence per ifExists', async () => {
    const name = originName('drop');
    await createOrigin(client, name);
    expect(await dropOrigin(client, name)).toBe(true);
    expect((await listOrigins(client)).some((o) => o.name === name)).toBe(false);
    expect(await dropOrigin(client, name, { ifExists: true })).toBe(false);
    expect((await errorOf(dropOrigin(client, name))).code).toBe('ORIGIN_NOT_FOUND');
  });

  it('maps a missing origin to ORIGIN_NOT_FOUND for progress and advance', async () => {
    const name = originName('missing');
    expect((await errorOf(originProgress(client, name))).code).toBe('ORIGIN_NOT_FOUND');
    expect((await errorOf(advanceOrigin(client, name, parseLsn('0/1')))).code).toBe('ORIGIN_NOT_FOUND');
  });

  it('refuses to drop an origin an apply session has set up (ORIGIN_ACTIVE)', async () => {
    const name = originName('in_use');
    await createOrigin(client, name);
    const apply = await connect(testServer().conninfo, { applicationName: 'wal-origins-apply' });
    try {
      await apply.query('SELECT pg_replication_origin_session_setup($1)', [name]);
      const err = await errorOf(dropOrigin(client, name));
      expect(err.code).toBe('ORIGIN_ACTIVE');
      await apply.query('SELECT pg_replication_origin_session_reset()');
      expect(await dropOrigin(client, name)).toBe(true);
    } finally {
      await apply.end();
    }
  });
});
