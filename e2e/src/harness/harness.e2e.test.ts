import { setTimeout as sleep } from 'node:timers/promises';
import { probe } from '@pgfleet/connection';
import { afterAll, describe, expect, it } from 'vitest';
import type { ClusterNode } from '../providers/types.js';
import { eventually } from '../support/eventually.js';
import { suiteProvider } from '../support/suite-provider.js';

const suite = await suiteProvider();
const provider = suite.provider;

/** One fresh connection + SELECT 1 with a hard deadline: 'ok', 'timeout' or the error code. */
async function reach(conninfo: string, timeoutMs: number): Promise<string> {
  const res = await probe(conninfo, { timeoutMs });
  if (res.ok) return 'ok';
  return res.latencyMs >= timeoutMs - 50 ? 'timeout' : res.error.code;
}

describe.skipIf(!provider)(`e2e harness (${suite.label})`, () => {
  afterAll(async () => {
    await provider?.destroy();
  });

  describe('primary + standby', () => {
    let primary: ClusterNode;
    let standby: ClusterNode;

    it('replicates a table written on the primary to the standby', async () => {
      primary = await provider!.startPrimary('p');
      await primary.query('CREATE TABLE harness_items (id int PRIMARY KEY)');
      standby = await provider!.startStandby('s', primary);
      await primary.query('INSERT INTO harness_items SELECT generate_series(1, 500)');
      const rows = await eventually(
        'standby to replay 500 rows',
        () => standby.query<{ n: string }>('SELECT count(*) AS n FROM harness_items'),
        (r) => r[0]?.n === '500',
      );
      expect(rows[0]?.n).toBe('500');
    });

    it('pause freezes a node and resume thaws it', async () => {
      await primary.pause();
      expect(await reach(primary.conninfo(), 800)).toBe('timeout');
      await primary.resume();
      expect(await reach(primary.conninfo(), 5_000)).toBe('ok');
    });

    it('a partition blocks traffic between two named parties and heals', async () => {
      await provider!.partition('p', 's');
      await primary.query('INSERT INTO harness_items VALUES (9001)');
      await sleep(800);
      expect(await standby.query('SELECT 1 FROM harness_items WHERE id = 9001')).toHaveLength(0);
      await provider!.heal('p', 's');
      await eventually(
        'standby to catch up after heal',
        () => standby.query('SELECT 1 FROM harness_items WHERE id = 9001'),
        (r) => r.length === 1,
      );
    });

    it('killing the primary makes it unreachable within a second', async () => {
      const t0 = Date.now();
      await primary.kill();
      const res = await reach(primary.conninfo(), 1_000);
      expect(res).not.toBe('ok');
      expect(Date.now() - t0).toBeLessThan(1_500);
    });
  });

  describe('logical set', () => {
    it('starts 3 nodes with wal_level=logical and track_commit_timestamp=on', async () => {
      const nodes = await provider!.startLogicalNodes(['l1', 'l2', 'l3']);
      expect(nodes).toHaveLength(3);
      for (const n of nodes) {
        const [row] = await n.query<{ wal: string; ts: string }>(
          `SELECT current_setting('wal_level') AS wal, current_setting('track_commit_timestamp') AS ts`,
        );
        expect(row).toEqual({ wal: 'logical', ts: 'on' });
      }
      // A logical slot can be created and decodes a change (pgoutput needs a publication; test_decoding is in core).
      const [n1] = nodes;
      await n1!.query('CREATE TABLE lg (id int PRIMARY KEY)');
      await n1!.query(`SELECT pg_create_logical_replication_slot('harness_slot', 'test_decoding')`);
      await n1!.query('INSERT INTO lg VALUES (42)');
      const changes = await n1!.query<{ data: string }>(
        `SELECT data FROM pg_logical_slot_get_changes('harness_slot', NULL, NULL)`,
      );
      expect(changes.map((c) => c.data).join('\n')).toContain('id[integer]:42');
      await n1!.query(`SELECT pg_drop_replication_slot('harness_slot')`);
    });
  });
});
