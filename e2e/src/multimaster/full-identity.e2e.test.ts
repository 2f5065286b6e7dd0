import {
  InitError,
  initMesh,
  type ReplicatorHandle,
  type ResolvedConfig,
  startReplicator,
} from '@pgfleet/multimaster';
import type { Sandbox, SandboxNode } from '@pgfleet/sandbox';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { captureLogs, checkTables, client, meshConfig, onAll, quiesce, startNodes } from './fixture.js';

/**
 * REPLICA IDENTITY FULL tables (needed for row filters on non-key columns) under updates of
 * the same rows on several nodes at once, on databases with different TimeZone defaults:
 * rows are matched on their key, so a concurrent update is a conflict resolved by the
 * table's policy, never a "missing row" that each node skips.
 */

const DDL = `CREATE SCHEMA fu;
  CREATE TABLE fu.t (id int PRIMARY KEY, v int NOT NULL, region text NOT NULL, at timestamptz, note text);
  ALTER TABLE fu.t REPLICA IDENTITY FULL;
  CREATE TABLE fu.keyless (v int, at timestamptz);
  ALTER TABLE fu.keyless REPLICA IDENTITY FULL;`;

const TIMEZONES: Record<string, string> = {
  a: 'America/St_Johns',
  b: 'Asia/Kathmandu',
  c: 'Pacific/Chatham',
};

describe('multimaster: REPLICA IDENTITY FULL tables converge', () => {
  let sb: Sandbox;
  let a: SandboxNode;
  let b: SandboxNode;
  let c: SandboxNode;
  let nodes: SandboxNode[];
  let config: ResolvedConfig;
  let rep: ReplicatorHandle | undefined;
  const logs = captureLogs();

  const missing = async (n: SandboxNode) =>
    (
      await n.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pgfleet.conflicts WHERE table_name = 't' AND kind IN ('update_missing', 'delete_missing')`,
      )
    )[0]?.n;

  beforeAll(async () => {
    ({ sb, nodes } = await startNodes(['a', 'b', 'c']));
    [a, b, c] = nodes as [SandboxNode, SandboxNode, SandboxNode];
    for (const n of nodes) {
      await n.query(
        `ALTER DATABASE ${pg.escapeIdentifier(n.facts().database)} SET TimeZone = ${pg.escapeLiteral(TIMEZONES[n.name] as string)}`,
      );
    }
    await onAll(nodes, DDL);
    config = meshConfig(nodes, {
      tables: [{ name: 'fu.t', targets: { c: { rowFilter: "region = 'eu'" } } }],
    });
    await initMesh(config, { logger: logs.logger });
    rep = startReplicator(config, { logger: logs.logger });
    await a.query(
      `INSERT INTO fu.t SELECT g, 0, CASE WHEN g % 4 = 0 THEN 'us' ELSE 'eu' END, '2024-06-01 09:30:00.123456+00', repeat('n', g) FROM generate_series(1, 20) g`,
    );
    await quiesce(nodes);
  });

  afterAll(async () => {
    await rep?.stop();
    await sb?.destroy();
  });

  it('init refuses a FULL table without a key, with the reason, and creates nothing for it', async () => {
    const withKeyless = meshConfig(nodes, { tables: ['fu.t', 'fu.keyless'] });
    const err = await initMesh(withKeyless, { logger: logs.logger }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(InitError);
    const problems = (err as InitError).problems.filter((p) => p.table === 'fu.keyless');
    expect(problems.map((p) => p.node).sort()).toEqual(['a', 'b', 'c']);
    expect(problems[0]?.message).toMatch(
      /REPLICA IDENTITY FULL without a primary key.*each keep their own version/,
    );
  });

  it('an update of the same row on two nodes while they cannot see each other resolves by commit time, on every node', async () => {
    await rep?.stop();
    rep = undefined;
    // a first, b later, each on a row the other also changes; the timestamps differ in
    // each database's TimeZone rendering, which must not matter.
    await a.query(`UPDATE fu.t SET v = 100, at = now() WHERE id IN (1, 2, 3)`);
    await b.query(`UPDATE fu.t SET v = 200, at = now() WHERE id IN (2, 3, 4)`);
    await c.query(`UPDATE fu.t SET v = 300, at = now() WHERE id = 3`);
    await a.query(`DELETE FROM fu.t WHERE id = 5`);
    await b.query(`UPDATE fu.t SET v = 201 WHERE id = 6`);
    rep = startReplicator(config, { logger: logs.logger });
    await quiesce(nodes);
    const v = async (n: SandboxNode) =>
      (await n.query<{ id: number; v: number }>(`SELECT id, v FROM fu.t WHERE id <= 6 ORDER BY id`)).map(
        (r) => `${r.id}=${r.v}`,
      );
    // The later update wins (c's on row 3, b's on 2 and 4); a's delete of 5 and b's lone
    // update of 6 arrive everywhere. c holds only the eu rows (4 is us).
    expect(await v(a)).toEqual(['1=100', '2=200', '3=300', '4=200', '6=201']);
    expect(await v(b)).toEqual(await v(a));
    expect(await v(c)).toEqual(['1=100', '2=200', '3=300', '6=201']);
    for (const n of [a, b]) expect(await missing(n), n.name).toBe(0);
    const [chk] = await checkTables({ ...config, nodes: config.nodes.filter((n) => n.name !== 'c') }, [
      'fu.t',
    ]);
    expect(chk?.equal).toBe(true);
  });

  it('a hot set of 20 rows updated concurrently from three nodes ends the same on every node, with no row taken for missing', async () => {
    const writers = await Promise.all(nodes.map((n) => client(n)));
    try {
      await Promise.all(
        writers.map(async (w, i) => {
          // 25 transactions of 4 rows each: every conflicting transaction is replayed on the
          // careful path with a session restart today (issue 8), so keep the count modest.
          for (let k = 0; k < 25; k++) {
            const ids = [0, 5, 10, 15].map((o) => 1 + ((k * 7 + i * 3 + o) % 20));
            await w.query(`UPDATE fu.t SET v = v + 1, at = clock_timestamp(), note = $2 WHERE id = ANY($1)`, [
              ids,
              `${nodes[i]?.name}${k}`,
            ]);
          }
        }),
      );
    } finally {
      for (const w of writers) await w.end();
    }
    await quiesce(nodes, 180_000);
    const ab = { ...config, nodes: config.nodes.filter((n) => n.name !== 'c') };
    const [chk] = await checkTables(ab, ['fu.t']);
    expect(chk?.differingKeys).toEqual([]);
    expect(chk?.equal).toBe(true);
    // c holds exactly a's eu rows.
    const eu = async (n: SandboxNode) =>
      (
        await n.query<{ r: string }>(
          `SELECT (id, v, region, extract(epoch FROM at)::text, note)::text AS r FROM fu.t WHERE region = 'eu' ORDER BY id`,
        )
      ).map((x) => x.r);
    expect(await eu(c)).toEqual(await eu(a));
    for (const n of nodes) expect(await missing(n), n.name).toBe(0);
  });
});
