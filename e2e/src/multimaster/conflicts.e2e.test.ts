import { initMesh, type ReplicatorHandle, type ResolvedConfig, startReplicator } from '@pgfleet/multimaster';
import type { Sandbox, SandboxNode } from '@pgfleet/sandbox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../support/eventually.js';
import {
  captureLogs,
  checkTables,
  conflictsOn,
  count,
  meshConfig,
  onAll,
  quiesce,
  startNodes,
} from './fixture.js';

const POLICIES = ['last_update_wins', 'first_update_wins', 'apply_remote', 'keep_local'] as const;

const DDL = `
  CREATE SCHEMA c5; CREATE TABLE c5.t (id int PRIMARY KEY, v text);
  CREATE SCHEMA c6; CREATE TABLE c6.t (id int PRIMARY KEY, v text);
  CREATE SCHEMA c7;
  ${POLICIES.map((p) => `CREATE TABLE c7.${p} (id int PRIMARY KEY, v text);`).join('\n')}
  CREATE TABLE c7.error (id int PRIMARY KEY, v text);
  CREATE TABLE c7.turns (id int PRIMARY KEY, v text);`;

/** Commit timestamp of a row's last change, µs since 2000-01-01 (PostgreSQL's epoch). */
async function commitMicros(node: SandboxNode, table: string, id: number): Promise<bigint> {
  const r = await node.query<{ us: string }>(
    `SELECT ((extract(epoch FROM pg_xact_commit_timestamp(xmin)) * 1000000)::int8 - 946684800000000)::text AS us
       FROM ${table} WHERE id = $1`,
    [id],
  );
  return BigInt(r[0]?.us as string);
}

async function value(node: SandboxNode, table: string, id: number): Promise<string | null | undefined> {
  const r = await node.query<{ v: string | null }>(`SELECT v FROM ${table} WHERE id = $1`, [id]);
  return r.length === 0 ? undefined : (r[0]?.v ?? null);
}

describe('multimaster: conflicts', () => {
  let sb: Sandbox;
  let a: SandboxNode;
  let b: SandboxNode;
  let c: SandboxNode;
  let nodes: SandboxNode[];
  let config: ResolvedConfig;
  let rep: ReplicatorHandle | undefined;
  const logs = captureLogs();
  /** Scenario 6 forces one transaction's commit timestamp, as edges from c see it. */
  let forced: { xid: number; commitTs: bigint } | null = null;

  const start = (edges?: string[]) => {
    rep = startReplicator(config, {
      logger: logs.logger,
      ...(edges ? { edges } : {}),
      testHooks: {
        commitTs: (edge, xid, ts) =>
          forced && edge.startsWith('c_') && xid === forced.xid ? forced.commitTs : ts,
      },
    });
  };
  const stop = async () => {
    await rep?.stop();
    rep = undefined;
  };

  beforeAll(async () => {
    ({ sb, nodes } = await startNodes(['a', 'b', 'c']));
    [a, b, c] = nodes as [SandboxNode, SandboxNode, SandboxNode];
    await onAll(nodes, DDL);
    // Through loopback proxies of party 'mm', so the replicator can be cut off from a node.
    config = meshConfig(
      nodes,
      {
        tables: [
          'c5.t',
          'c6.t',
          ...POLICIES.map((p) => ({ name: `c7.${p}`, conflict: p })),
          { name: 'c7.error', conflict: 'error' },
          { name: 'c7.turns', conflict: 'first_update_wins' },
        ],
      },
      { from: 'mm' },
    );
    await initMesh(config, { logger: logs.logger });
    start();
  });

  afterAll(async () => {
    sb?.healAll();
    await stop();
    await sb?.destroy();
  });

  it('5: an update/update conflict across a cut edge converges to the later commit everywhere and is logged where it was resolved', async () => {
    await a.query(`INSERT INTO c5.t VALUES (1, 'orig')`);
    await quiesce(nodes);
    sb.partition('mm', 'a');
    try {
      await a.query(`UPDATE c5.t SET v = 'from a (earlier)' WHERE id = 1`);
      await b.query(`UPDATE c5.t SET v = 'from b (later)' WHERE id = 1`);
      await eventually(
        "b's update on c",
        () => value(c, 'c5.t', 1),
        (v) => v === 'from b (later)',
      );
      expect(await value(a, 'c5.t', 1)).toBe('from a (earlier)');
    } finally {
      sb.heal('mm', 'a');
    }
    await quiesce(nodes);
    for (const n of nodes) expect(await value(n, 'c5.t', 1), n.name).toBe('from b (later)');
    const [check] = await checkTables(config, ['c5.t']);
    expect(check?.equal).toBe(true);

    // a resolved it by applying b's later row; b and c kept theirs against a's earlier one.
    expect(await conflictsOn(a, 'c5', 't')).toEqual([
      expect.objectContaining({
        edge: 'b_a',
        kind: 'update_differs',
        resolution: 'apply',
        reason: 'remote change is later',
        local_row: { id: 1, v: 'from a (earlier)' },
        remote_row: { id: '1', v: 'from b (later)' },
      }),
    ]);
    expect(await conflictsOn(b, 'c5', 't')).toEqual([
      expect.objectContaining({ edge: 'a_b', kind: 'update_differs', resolution: 'skip' }),
    ]);
    // c met only the race: a's update against b's later row. b had seen the row a wrote
    // before (its 'orig'), so b's update of it is not a conflict anywhere, although another
    // node wrote the row last (PostgreSQL 18 would log it as update_origin_differs).
    expect(await conflictsOn(c, 'c5', 't')).toEqual([
      expect.objectContaining({ edge: 'a_c', kind: 'update_differs', resolution: 'skip' }),
    ]);
    // Each edge logs its conflicts once committed, from its next status tick.
    const logged = await eventually(
      'a conflict line from every node',
      async () => logs.lines.filter((l) => l.msg === 'conflict' && l.table === 'c5.t'),
      (l) => new Set(l.map((x) => x.node)).size === 3,
    );
    expect(logged).toHaveLength(3);
    // and counts each once in its status (the metrics count the same reports).
    const counted = rep
      ?.status()
      .edges.filter((e) => e.conflicts > 0)
      .map((e) => `${e.edge}:${e.conflicts}`);
    expect(counted?.sort()).toEqual(['a_b:1', 'a_c:1', 'b_a:1']);
    expect(logged).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ node: 'a', edge: 'b_a', kind: 'update_differs', resolution: 'apply' }),
        expect.objectContaining({ node: 'b', edge: 'a_b', resolution: 'skip' }),
        expect.objectContaining({ node: 'c', edge: 'a_c', resolution: 'skip' }),
      ]),
    );
    // A conflict line binds edge and node once: no key twice in the JSON.
    expect(logs.duplicated).toEqual([]);
  });

  it('6: an exact commit-timestamp tie goes to the lower-rank node on every node, whatever the apply order', async () => {
    await a.query(`INSERT INTO c6.t VALUES (1, 'orig')`);
    await quiesce(nodes);
    await stop();
    await c.query(`UPDATE c6.t SET v = 'from c (rank 2)' WHERE id = 1`);
    await a.query(`UPDATE c6.t SET v = 'from a (rank 0)' WHERE id = 1`);
    const [xrow] = await c.query<{ xid: string }>('SELECT xmin::text AS xid FROM c6.t WHERE id = 1');
    // c's transaction is seen by the mesh with a's exact commit timestamp.
    forced = { xid: Number(xrow?.xid), commitTs: await commitMicros(a, 'c6.t', 1) };

    // b applies c's version first (so there the tie is won by the incoming, lower-rank row)...
    start(['c_b']);
    await eventually(
      "c's version on b",
      () => value(b, 'c6.t', 1),
      (v) => v === 'from c (rank 2)',
    );
    expect(await commitMicros(b, 'c6.t', 1)).toBe(forced.commitTs);
    await stop();
    // ...then everything flows.
    start();
    await quiesce(nodes);
    for (const n of nodes) expect(await value(n, 'c6.t', 1), n.name).toBe('from a (rank 0)');
    const [check] = await checkTables(config, ['c6.t']);
    expect(check?.equal).toBe(true);
    const tie = 'equal commit timestamps: rank 0 (lower) wins';
    expect(await conflictsOn(a, 'c6', 't')).toEqual([
      expect.objectContaining({ edge: 'c_a', resolution: 'skip', reason: tie }),
    ]);
    expect(await conflictsOn(b, 'c6', 't')).toEqual(
      expect.arrayContaining([expect.objectContaining({ edge: 'a_b', resolution: 'apply', reason: tie })]),
    );
    forced = null;
  });

  it('7: insert/insert, update of a row deleted elsewhere and delete of a missing row behave as each policy documents', async () => {
    for (const p of POLICIES) await a.query(`INSERT INTO c7.${p} VALUES (2, 'orig'), (3, 'orig')`);
    await quiesce(nodes);
    await stop();
    for (const p of POLICIES) {
      // a writes first, b later: b's changes carry the later commit timestamps.
      await a.query(`INSERT INTO c7.${p} VALUES (1, 'a'); DELETE FROM c7.${p} WHERE id IN (2, 3)`);
    }
    for (const p of POLICIES) {
      await b.query(
        `INSERT INTO c7.${p} VALUES (1, 'b'); UPDATE c7.${p} SET v = 'b' WHERE id = 2; DELETE FROM c7.${p} WHERE id = 3`,
      );
    }
    start();
    await quiesce(nodes);

    const state = async (p: string) =>
      Object.fromEntries(
        await Promise.all(
          nodes.map(async (n) => [
            n.name,
            (await n.query<{ id: number; v: string }>(`SELECT id, v FROM c7.${p} ORDER BY id`)).map(
              (r) => `${r.id}=${r.v}`,
            ),
          ]),
        ),
      );

    // last_update_wins: b's later insert wins; the delete wins over the concurrent update.
    expect(await state('last_update_wins')).toEqual({ a: ['1=b'], b: ['1=b'], c: ['1=b'] });
    // first_update_wins: a's earlier insert wins; deletes still win.
    expect(await state('first_update_wins')).toEqual({ a: ['1=a'], b: ['1=a'], c: ['1=a'] });
    // apply_remote: each node takes the incoming row, so a and b swap inserts (documented:
    // not convergent for writes on both sides; `check` names the key).
    const remote = await state('apply_remote');
    expect(remote.a).toEqual(['1=b']);
    expect(remote.b).toEqual(['1=a']);
    // keep_local: each node keeps its own insert, and b keeps its updated row 2.
    const local = await state('keep_local');
    expect(local.a).toEqual(['1=a']);
    expect(local.b).toEqual(['1=b', '2=b']);
    const checks = await checkTables(
      config,
      POLICIES.map((p) => `c7.${p}`),
    );
    expect(Object.fromEntries(checks.map((t) => [t.table, t.equal]))).toEqual({
      'c7.last_update_wins': true,
      'c7.first_update_wins': true,
      'c7.apply_remote': false,
      'c7.keep_local': false,
    });
    expect(checks.find((t) => t.table === 'c7.apply_remote')?.differingKeys).toContain('(1)');

    // Every conflict is recorded with the policy applied, on the node that met it.
    for (const p of POLICIES) {
      const onA = await conflictsOn(a, 'c7', p);
      const onB = await conflictsOn(b, 'c7', p);
      const kinds = (rows: Array<Record<string, unknown>>) =>
        rows.map((r) => `${r.kind}:${r.resolution}`).sort();
      const insA = {
        last_update_wins: 'apply',
        first_update_wins: 'skip',
        apply_remote: 'apply',
        keep_local: 'skip',
      }[p];
      const insB = {
        last_update_wins: 'skip',
        first_update_wins: 'apply',
        apply_remote: 'apply',
        keep_local: 'skip',
      }[p];
      // On a: b's insert (insert_exists), b's update of row 2 a deleted (update_missing), b's delete of row 3 a deleted.
      expect(kinds(onA), `${p} on a`).toEqual(
        [`delete_missing:skip`, `insert_exists:${insA}`, 'update_missing:skip'].sort(),
      );
      // On b: a's insert, a's delete of row 2 b updated (delete_differs), a's delete of row 3 b deleted.
      expect(kinds(onB), `${p} on b`).toEqual(
        [
          `delete_differs:${p === 'keep_local' ? 'skip' : 'apply'}`,
          'delete_missing:skip',
          `insert_exists:${insB}`,
        ].sort(),
      );
      for (const r of [...onA, ...onB]) expect(r.policy).toBe(p);
    }
  });

  it('8: rows updated in turn (each update made on top of the version received) are no conflict, so first_update_wins converges', async () => {
    await a.query(`INSERT INTO c7.turns VALUES (1, 'a1')`);
    await quiesce(nodes);
    await b.query(`UPDATE c7.turns SET v = 'b2' WHERE id = 1`);
    await quiesce(nodes);
    await c.query(`UPDATE c7.turns SET v = 'c3' WHERE id = 1`);
    await quiesce(nodes);
    await a.query(`UPDATE c7.turns SET v = 'a4' WHERE id = 1`);
    await quiesce(nodes);
    // Each later update wins everywhere although its commit is later than the local row's:
    // the writer had seen that row, so nothing raced and the policy is never asked.
    for (const n of nodes) expect(await value(n, 'c7.turns', 1), n.name).toBe('a4');
    for (const n of nodes) expect(await conflictsOn(n, 'c7', 'turns'), n.name).toEqual([]);
    const [check] = await checkTables(config, ['c7.turns']);
    expect(check?.equal).toBe(true);
  });

  it('7: under policy error a conflict pauses the edge with a dead letter, and `skip` resumes it', async () => {
    await stop();
    await a.query(`INSERT INTO c7.error VALUES (1, 'a')`);
    await b.query(`INSERT INTO c7.error VALUES (1, 'b')`);
    start();
    const paused = await eventually(
      'edge b_a paused',
      async () => rep?.status().edges.find((e) => e.edge === 'b_a'),
      (e) => e?.state === 'paused',
    );
    expect(paused?.lastError).toMatchObject({ code: 'EDGE_PAUSED' });
    expect(paused?.lastError?.message).toMatch(/conflict insert_exists on c7\.error/);
    expect(paused?.lastError?.message).toMatch(/pgfleet-mm skip --edge b_a --lsn/);
    // Nothing was applied: each node still has its own row.
    expect(await value(a, 'c7.error', 1)).toBe('a');
    expect(await value(b, 'c7.error', 1)).toBe('b');
    const dl = await a.query<{ lsn: string; action: string; table_name: string }>(
      `SELECT commit_lsn::text AS lsn, action, table_name FROM pgfleet.dead_letters WHERE edge = 'b_a'`,
    );
    expect(dl).toEqual([{ lsn: expect.any(String), action: 'pause', table_name: 'error' }]);
    expect(await conflictsOn(a, 'c7', 'error')).toEqual(
      expect.arrayContaining([expect.objectContaining({ kind: 'insert_exists', resolution: 'error' })]),
    );

    // The operator skips the transaction (what `pgfleet-mm skip --edge b_a --lsn ...` records).
    await a.query(`INSERT INTO pgfleet.skip_requests (edge, commit_lsn) VALUES ('b_a', $1::pg_lsn)`, [
      dl[0]?.lsn,
    ]);
    await eventually(
      'edge b_a streaming again',
      async () => rep?.status().edges.find((e) => e.edge === 'b_a')?.state,
      (s) => s === 'streaming',
      { timeoutMs: 20_000 },
    );
    expect(await value(a, 'c7.error', 1)).toBe('a');
    expect(await a.query(`SELECT action FROM pgfleet.dead_letters WHERE edge = 'b_a' ORDER BY id`)).toEqual([
      { action: 'pause' },
      { action: 'skipped_by_operator' },
    ]);
    expect(await count(a, 'pgfleet.skip_requests')).toBe(0);
  });
});
