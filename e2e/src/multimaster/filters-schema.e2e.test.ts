import type { ReplicatorHandle, ResolvedConfig } from '@pgfleet/multimaster';
import type { Sandbox, SandboxNode } from '@pgfleet/sandbox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../support/eventually.js';
import {
  captureLogs,
  count,
  initAndStart,
  meshConfig,
  onAll,
  quiesce,
  sleep,
  startNodes,
} from './fixture.js';

const DDL = `
  CREATE SCHEMA f;
  -- A row filter on a non-key column needs the column in the replica identity (PostgreSQL's
  -- rule for publications that replicate UPDATE/DELETE): REPLICA IDENTITY FULL here.
  CREATE TABLE f.rows (id int PRIMARY KEY, region text NOT NULL, v text);
  ALTER TABLE f.rows REPLICA IDENTITY FULL;
  CREATE TABLE f.cols (id int PRIMARY KEY, region text, secret text DEFAULT 'hidden');
  CREATE TABLE f.plain (id int PRIMARY KEY);
  CREATE TABLE f.sch (id int PRIMARY KEY, v text);
  CREATE TABLE f.wid (id int PRIMARY KEY, v varchar(3));`;

describe('multimaster: filters and schema changes', () => {
  let sb: Sandbox;
  let a: SandboxNode;
  let b: SandboxNode;
  let nodes: SandboxNode[];
  let config: ResolvedConfig;
  let rep: ReplicatorHandle;
  const logs = captureLogs();

  beforeAll(async () => {
    ({ sb, nodes } = await startNodes(['a', 'b']));
    [a, b] = nodes as [SandboxNode, SandboxNode];
    await onAll(nodes, DDL);
    config = meshConfig(nodes, {
      tables: [
        { name: 'f.rows', targets: { b: { rowFilter: "region = 'eu'" } } },
        { name: 'f.cols', targets: { b: { columns: ['id', 'region'] } } },
        'f.plain',
        'f.sch',
        'f.wid',
      ],
    });
    rep = await initAndStart(config, logs.logger);
  });

  afterAll(async () => {
    await rep?.stop();
    await sb?.destroy();
  });

  const edge = (id: string) => rep.status().edges.find((e) => e.edge === id);
  const pausedEdge = (id: string) =>
    eventually(
      `edge ${id} paused`,
      async () => edge(id),
      (e) => e?.state === 'paused',
    );
  /** Waits until edge `id` streams again with no error. */
  const streamingAgain = (id: string) =>
    eventually(
      `edge ${id} streaming again`,
      async () => edge(id),
      (e) => e?.state === 'streaming' && e.lastError === null,
      { timeoutMs: 20_000 },
    );

  const rowsOn = async (n: SandboxNode) =>
    n.query<{ id: number; region: string; v: string }>('SELECT id, region, v FROM f.rows ORDER BY id');

  it("8: with row filter region = 'eu' on a->b, 'us' rows never reach b, eu->us becomes a DELETE and us->eu an INSERT", async () => {
    await a.query(`INSERT INTO f.rows VALUES (1, 'eu', 'one'), (2, 'us', 'two'), (3, 'us', 'three')`);
    await a.query(`UPDATE f.rows SET v = 'three!' WHERE id = 3`);
    await quiesce(nodes);
    expect(await rowsOn(b)).toEqual([{ id: 1, region: 'eu', v: 'one' }]);

    await a.query(`UPDATE f.rows SET region = 'us' WHERE id = 1`);
    await a.query(`UPDATE f.rows SET region = 'eu' WHERE id = 2`);
    await quiesce(nodes);
    // Row 1 left the filter (DELETE downstream); row 2 entered it, whole (INSERT downstream).
    expect(await rowsOn(b)).toEqual([{ id: 2, region: 'eu', v: 'two' }]);
    // The other direction is not filtered.
    await b.query(`INSERT INTO f.rows VALUES (4, 'us', 'from b')`);
    await quiesce(nodes);
    expect((await rowsOn(a)).map((r) => r.id)).toEqual([1, 2, 3, 4]);
    expect(await count(b, 'f.rows', `region = 'us'`)).toBe(1); // only b's own row 4
  });

  it('8: with a column list on a->b, the excluded column keeps its default on b', async () => {
    await a.query(`INSERT INTO f.cols VALUES (1, 'eu', 'top secret')`);
    await quiesce(nodes);
    expect(await b.query('SELECT id, region, secret FROM f.cols')).toEqual([
      { id: 1, region: 'eu', secret: 'hidden' },
    ]);
    await a.query(`UPDATE f.cols SET secret = 'still secret', region = 'us' WHERE id = 1`);
    await quiesce(nodes);
    expect(await b.query('SELECT id, region, secret FROM f.cols')).toEqual([
      { id: 1, region: 'us', secret: 'hidden' },
    ]);
    expect(await a.query('SELECT secret FROM f.cols')).toEqual([{ secret: 'still secret' }]);
  });

  it('12: a column added on one node only pauses the edge with a clear error, applies nothing of the transaction, and resumes once the column exists everywhere', async () => {
    await a.query('ALTER TABLE f.sch ADD COLUMN extra int');
    await a.query(`BEGIN; INSERT INTO f.plain VALUES (1); INSERT INTO f.sch VALUES (1, 'x', 5); COMMIT`);
    const paused = await pausedEdge('a_b');
    expect(paused?.lastError).toMatchObject({
      code: 'SCHEMA_MISMATCH',
      details: expect.objectContaining({ table: 'f.sch', column: 'extra' }),
    });
    expect(paused?.lastError?.message).toContain('column "extra" of f.sch exists on a but not on b');
    // It stays paused while it retries, and nothing of that transaction reached b.
    const seen = new Set<string>();
    for (let i = 0; i < 25; i++) {
      seen.add(edge('a_b')?.state ?? '?');
      await sleep(100);
    }
    expect([...seen]).toEqual(['paused']);
    expect(await count(b, 'f.plain')).toBe(0);
    expect(await count(b, 'f.sch')).toBe(0);
    // The other direction keeps streaming.
    expect(edge('b_a')?.state).toBe('streaming');

    await b.query('ALTER TABLE f.sch ADD COLUMN extra int');
    await streamingAgain('a_b');
    await quiesce(nodes);
    expect(await b.query('SELECT id FROM f.plain')).toEqual([{ id: 1 }]);
    expect(await b.query('SELECT id, v, extra FROM f.sch')).toEqual([{ id: 1, v: 'x', extra: 5 }]);
    expect(logs.lines.filter((l) => l.msg === 'edge paused' && l.edge === 'a_b')).toHaveLength(1);
  });

  it('13: a column widened on one node first: a longer value pauses the edge into the narrower node, is never cut to fit, and applies whole once widened there', async () => {
    await a.query('ALTER TABLE f.wid ALTER COLUMN v TYPE varchar(10)');
    await a.query(`BEGIN; INSERT INTO f.plain VALUES (2); INSERT INTO f.wid VALUES (1, 'abcdef'); COMMIT`);
    const paused = await pausedEdge('a_b');
    expect(paused?.lastError).toMatchObject({
      code: 'EDGE_PAUSED',
      details: expect.objectContaining({ sqlState: '22001' }),
    });
    expect(paused?.lastError?.message).toContain('value too long for type character varying(3)');
    expect(await b.query('SELECT id FROM f.plain WHERE id = 2')).toEqual([]);
    expect(await b.query('SELECT v FROM f.wid')).toEqual([]);

    await b.query('ALTER TABLE f.wid ALTER COLUMN v TYPE varchar(10)');
    await streamingAgain('a_b');
    await quiesce(nodes);
    for (const n of nodes) {
      expect(await n.query('SELECT id, v FROM f.wid')).toEqual([{ id: 1, v: 'abcdef' }]);
      expect(await n.query('SELECT id FROM f.plain WHERE id = 2')).toEqual([{ id: 2 }]);
    }
  });
});
