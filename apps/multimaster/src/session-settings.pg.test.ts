import { connect } from '@pgfleet/connection';
import { testServer } from '@pgfleet/sandbox/vitest';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { APPLY_SESSION_SETTINGS, applySessionSql } from './session-settings.js';

const SCHEMA = 'mm_session_settings_pg';

describe('apply session planner settings', () => {
  let admin: pg.Client;

  beforeAll(async () => {
    admin = await connect(testServer().conninfo);
    await admin.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE; CREATE SCHEMA ${SCHEMA}`);
    // pgbench's branches: one row, analyzed, so the planner knows the table is tiny.
    await admin.query(
      `CREATE TABLE ${SCHEMA}.branches (bid int PRIMARY KEY, bbalance int, filler char(88));
       INSERT INTO ${SCHEMA}.branches VALUES (1, 0, '');
       ANALYZE ${SCHEMA}.branches`,
    );
  });

  afterAll(async () => {
    await admin.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`);
    await admin.end();
  });

  /** The generic plan of an apply-style keyed UPDATE (values from a text[] parameter) in a session set up with `setup`. */
  async function planOfKeyedUpdate(setup: string | null): Promise<string> {
    const c = await connect(testServer().conninfo, { settings: APPLY_SESSION_SETTINGS });
    try {
      await c.query(setup ?? 'SET plan_cache_mode = force_generic_plan');
      await c.query(
        `PREPARE u(text[]) AS UPDATE ${SCHEMA}.branches AS t SET bbalance = $1[2]::int WHERE t.bid = $1[1]::int`,
      );
      const { rows } = await c.query<{ 'QUERY PLAN': string }>(`EXPLAIN EXECUTE u('{1,5}')`);
      return rows.map((r) => r['QUERY PLAN']).join('\n');
    } finally {
      await c.end();
    }
  }

  it('finds a row of a one-row table by its key index, as the apply worker does', async () => {
    // Without the apply settings, a generic plan scans the tiny table: the case that matters.
    expect(await planOfKeyedUpdate(null)).toMatch(/Seq Scan on branches/);
    const plan = await planOfKeyedUpdate(applySessionSql('off'));
    expect(plan).toMatch(/Index Scan using branches_pkey on branches/);
    expect(plan).not.toMatch(/Seq Scan/);
  });
});
