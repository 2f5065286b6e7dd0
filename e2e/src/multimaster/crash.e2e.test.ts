import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initMesh, type ResolvedConfig, startReplicator } from '@pgfleet/multimaster';
import type { Sandbox, SandboxNode } from '@pgfleet/sandbox';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../support/eventually.js';
import { captureLogs, client, count, meshConfig, onAll, quiesce, sleep, startNodes } from './fixture.js';
import { exited, killRepeatedly, lastLocalCommitEnd, spawnRun } from './replicator-child.js';

/**
 * A writer that keeps committing on one node until stopped: single-row inserts, 20-row
 * inserts and updates of its own rows. Returns the ids it knows are committed.
 */
function writer(node: SandboxNode, base: number) {
  let stop = false;
  const committed = new Set<number>();
  let failures = 0;
  const done = (async () => {
    let cl: pg.Client | null = null;
    let next = base;
    while (!stop) {
      try {
        cl ??= await client(node);
        const n = next % 7 === 0 ? 20 : 1;
        const ids = Array.from({ length: n }, (_, i) => next + i);
        await cl.query(`INSERT INTO k.t (id, origin, n) SELECT unnest($1::int[]), $2, 0`, [ids, node.name]);
        for (const id of ids) committed.add(id);
        next += n;
        if (next % 5 === 0) await cl.query('UPDATE k.t SET n = n + 1 WHERE id = $1', [base + (next % 97)]);
        await sleep(2);
      } catch {
        // The node restarted under us (scenario 10): reconnect; an unacknowledged commit is
        // simply not counted as committed (its id is retried with a fresh one).
        failures++;
        await cl?.end().catch(() => {});
        cl = null;
        next += 20;
        await sleep(100);
      }
    }
    await cl?.end().catch(() => {});
  })();
  return {
    committed,
    get failures() {
      return failures;
    },
    async stop() {
      stop = true;
      await done;
    },
  };
}

async function ids(node: SandboxNode): Promise<number[]> {
  return (await node.query<{ id: number }>('SELECT id FROM k.t ORDER BY id')).map((r) => r.id);
}

describe('multimaster: crashes', () => {
  let sb: Sandbox;
  let a: SandboxNode;
  let b: SandboxNode;
  let nodes: SandboxNode[];
  let config: ResolvedConfig;
  let dir: string;
  let configFile: string;
  const children = new Set<ChildProcess>();

  beforeAll(async () => {
    ({ sb, nodes } = await startNodes(['a', 'b']));
    [a, b] = nodes as [SandboxNode, SandboxNode];
    await onAll(
      nodes,
      'CREATE SCHEMA k; CREATE TABLE k.t (id int PRIMARY KEY, origin text NOT NULL, n int NOT NULL)',
    );
    config = meshConfig(nodes, { tables: ['k.t'] });
    await initMesh(config);
    dir = mkdtempSync(join(tmpdir(), 'pgfleet-mm-crash-'));
    configFile = join(dir, 'mesh.yaml');
    writeFileSync(
      configFile,
      [
        'nodes:',
        ...nodes.map((n) => `  - { name: ${n.name}, conninfo: "${n.conninfo()}" }`),
        'tables: [k.t]',
        'http: { listen: off }', // the file accepts off like the flag and env
        'statusIntervalMs: 200',
        'reconnect: { baseDelayMs: 50, maxDelayMs: 500 }',
      ].join('\n'),
    );
    // Audit slots decode the same publications independently of the replicator.
    await a.query(`SELECT pg_create_logical_replication_slot('audit', 'pgoutput')`);
    await b.query(`SELECT pg_create_logical_replication_slot('audit', 'pgoutput')`);
  });

  afterAll(async () => {
    for (const c of children) c.kill('SIGKILL');
    await sb?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('9: a replicator SIGKILLed 20+ times under load loses nothing, applies nothing twice, and origin progress ends at the last applied commit', async () => {
    const wa = writer(a, 1_000_000);
    const wb = writer(b, 2_000_000);
    const kills = await killRepeatedly(configFile, children, {
      kills: 22,
      budgetMs: 150_000,
      maxLifeMs: 1200,
    });
    await wa.stop();
    await wb.stop();
    expect(kills).toBeGreaterThanOrEqual(20);
    expect(wa.committed.size + wb.committed.size).toBeGreaterThan(200);

    // The killed replicators did real work between kills (they were killed mid-stream).
    expect(await count(b, 'k.t', `origin = 'a'`)).toBeGreaterThan(0);
    expect(await count(a, 'k.t', `origin = 'b'`)).toBeGreaterThan(0);

    const { child: final } = spawnRun(configFile);
    children.add(final);
    await quiesce(nodes, 60_000);
    final.kill('SIGTERM');
    expect(await exited(final)).toBe(0);
    children.delete(final);

    const expected = [...wa.committed, ...wb.committed].sort((x, y) => x - y);
    for (const n of nodes) {
      // Nothing lost and nothing extra: exactly the ids both writers committed.
      expect(await ids(n), `${n.name}: ids`).toEqual(expected);
      // A transaction applied twice would have met its own row: insert_exists.
      expect(await count(n, 'pgfleet.conflicts'), `${n.name}: conflicts`).toBe(0);
    }
    expect(await ids(a)).toEqual(await ids(b));
    expect((await a.query('SELECT sum(n)::int AS s FROM k.t'))[0]?.s).toBe(
      (await b.query('SELECT sum(n)::int AS s FROM k.t'))[0]?.s,
    );

    // Exactly-once bookkeeping: each target's origin progress is the end of the source's last
    // own commit (applied transactions carry origins and are never re-sent).
    for (const [src, dst] of [
      [a, b],
      [b, a],
    ] as const) {
      const last = await lastLocalCommitEnd(src, 'audit', `pgfleet_${src.name}_${dst.name}`);
      const prog = await dst.query<{ lsn: string }>(
        `SELECT pg_replication_origin_progress($1, true)::text AS lsn`,
        [`pgfleet_${src.name}`],
      );
      expect(prog[0]?.lsn, `origin pgfleet_${src.name} on ${dst.name}`).toBe(last);
    }
  }, 300_000);

  it('10: a target node stopped with immediate shutdown under load resumes its stream with no gap and no duplicate', async () => {
    const logs = captureLogs();
    const rep = startReplicator(config, { logger: logs.logger });
    try {
      const wa = writer(a, 3_000_000);
      await sleep(1500);
      await b.stop('immediate');
      await sleep(1000);
      await b.start();
      await sleep(1500);
      await wa.stop();
      await quiesce(nodes, 60_000);
      const ab = rep.status().edges.find((e) => e.edge === 'a_b');
      expect(ab?.restarts).toBeGreaterThan(0);
      expect(ab?.state).toBe('streaming');
      // Only a wrote during this test: b holds exactly a's earlier rows plus every new one.
      const got = new Set(await ids(b));
      expect(
        [...wa.committed].filter((id) => !got.has(id)),
        'lost on b',
      ).toEqual([]);
      expect(await ids(a)).toEqual(await ids(b));
      expect(wa.failures).toBe(0);
      expect(await count(b, 'pgfleet.conflicts')).toBe(0);
      await eventually(
        'b_a streaming',
        async () => rep.status().edges.find((e) => e.edge === 'b_a')?.state,
        (s) => s === 'streaming',
      );
    } finally {
      await rep.stop();
    }
  });
});
