import type { Sandbox, SandboxNode } from '@pgfleet/sandbox';
import pg from 'pg';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkMesh } from '../check.js';
import { initMesh } from '../init/init.js';
import { type ReplicatorHandle, startReplicator } from '../replicator.js';
import { addNode } from './add-node.js';
import { holdOrigins } from './origin-hold.js';
import { meshConfig, quiesce, startThreeNodes } from './pg-test-support.js';

const logger = pino({ level: process.env.PGFLEET_TEST_LOG ?? 'silent' });

/**
 * A change that races with a row version the copy takes from the source must be judged on
 * the new node exactly as on the source: the copied version is the source's, with its commit
 * time and origin, so "what the sender had seen" and the floor must be the source's too.
 */
describe('add-node: a change racing with a copied row version', () => {
  let sb: Sandbox;
  let a: SandboxNode;
  let b: SandboxNode;
  let c: SandboxNode;
  let rep: ReplicatorHandle | undefined;

  beforeAll(async () => {
    ({ sb, a, b, c } = await startThreeNodes(
      'CREATE SCHEMA app; CREATE TABLE app.items (id int PRIMARY KEY, note text)',
    ));
  });
  afterAll(async () => {
    await rep?.stop();
    await sb?.destroy();
  });

  it('an update that lost to the copied version on the source loses on the new node too (last_update_wins)', async () => {
    const two = meshConfig([a, b]);
    const three = meshConfig([a, b, c]);
    await initMesh(two, { logger });
    rep = startReplicator(two, { logger });
    await a.query(`INSERT INTO app.items VALUES (1, 'first')`);
    await quiesce([a, b]);

    // a applies nothing more from b (until add-node takes b's origin on a itself).
    const held = await holdOrigins(a.conninfo(), ['pgfleet_b']);
    // a's update, left open so that it commits after b's and before add-node's snapshot,
    // which waits for it: the copy holds a's version, and a has not applied b's.
    const t = new pg.Client({ connectionString: a.uri() });
    t.on('error', () => {});
    await t.connect();
    await t.query('BEGIN');
    await t.query(`UPDATE app.items SET note = 'a' WHERE id = 1`);
    let raced: Promise<void> | null = null;
    try {
      await addNode(three, 'c', {
        logger,
        onProgress: (p) => {
          // b's slot to c exists now, so b's update streams to c from b itself.
          if (p.phase === 'catch-up' && !raced)
            raced = (async () => {
              await b.query(`UPDATE app.items SET note = 'b' WHERE id = 1`);
              await t.query('COMMIT');
            })();
        },
      });
      await raced;
    } finally {
      await t.end().catch(() => {});
      await held.release();
    }
    expect(raced, 'the race was run').not.toBeNull();
    // The copy took a's version; b's update (earlier, not having seen a's) is still to come.
    expect(await c.query('SELECT note FROM app.items')).toEqual([{ note: 'a' }]);

    await rep.stop();
    rep = startReplicator(three, { logger });
    await quiesce([a, b, c]);
    for (const n of [a, b, c])
      expect(await n.query('SELECT note FROM app.items'), n.name).toEqual([{ note: 'a' }]);
    for (const tc of await checkMesh(three)) expect(tc, tc.table).toMatchObject({ equal: true });
    // The race was real: on a and on c, b's update met a's version and lost by commit time.
    for (const n of [a, c])
      expect(
        await n.query(`SELECT kind, resolution FROM pgfleet.conflicts WHERE source_node = 'b'`),
        n.name,
      ).toEqual([{ kind: 'update_differs', resolution: 'skip' }]);
    // c judges with the source's floor (its join time would take a's version for seen by b).
    const floor = `SELECT registered_at::text AS t FROM pgfleet.nodes WHERE is_local`;
    expect(await c.query(floor)).toEqual(await a.query(floor));
  });
});
