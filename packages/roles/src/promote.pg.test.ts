import { connect } from '@pgfleet/connection';
import { Sandbox, type SandboxNode } from '@pgfleet/sandbox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { promote } from './promote.js';

const major = process.env.PGFLEET_PG_VERSION ? Number(process.env.PGFLEET_PG_VERSION) : undefined;

/*
 * Issue 9 case 4: a reload a few ms before the promote request made PostgreSQL sit out
 * wal_retrieve_retry_interval (5 s by default) before finishing recovery, in most trials.
 * Three standbys of one primary that is killed: each promotion below is one trial, with the
 * server default of 5 s, and every one must finish in well under it.
 */
describe('promote() never waits for wal_retrieve_retry_interval', () => {
  let sb: Sandbox;
  const standbys: SandboxNode[] = [];
  beforeAll(async () => {
    sb = await Sandbox.create({ name: 'roles-promote', ...(major ? { major } : {}) });
    const a = await sb.startNode('a');
    for (const name of ['b', 'c', 'd'])
      standbys.push(
        await sb.createStandby(name, a, {
          settings: { wal_retrieve_retry_interval: '5s', synchronous_standby_names: 'ANY 1 (a)' },
        }),
      );
    await a.kill();
    // Let every startup process settle into its retry cycle without a primary.
    await new Promise((r) => setTimeout(r, 300));
  });
  afterAll(() => sb?.destroy());

  it.each([0, 1, 2])(
    'trial %i: a reload just before promoting (the old race) costs no retry interval',
    async (i) => {
      const node = standbys[i]!;
      const q = await connect(node.conninfo());
      try {
        await q.query('SELECT pg_reload_conf()');
        const started = performance.now();
        const r = await promote(q, {
          waitSeconds: 30,
          node: node.name,
          settings: { synchronous_standby_names: '' },
        });
        const ms = performance.now() - started;
        expect(r.timeline).toBe(2);
        expect(ms).toBeLessThan(2500);
        const [row] = (await q.query("SELECT current_setting('synchronous_standby_names') AS s")).rows;
        expect(row.s).toBe('');
        console.log(
          `promotion ${node.name}: ${ms.toFixed(0)} ms, ${r.wakeups} wake-ups of the startup process`,
        );
      } finally {
        await q.end();
      }
    },
  );
});
