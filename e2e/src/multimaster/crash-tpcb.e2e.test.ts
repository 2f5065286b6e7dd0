import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkMesh, initMesh, type ResolvedConfig } from '@pgfleet/multimaster';
import type { Sandbox, SandboxNode } from '@pgfleet/sandbox';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findPgbench, pgbench } from '../bench/workload.js';
import { client, count, meshConfig, quiesce, sleep, startNodes } from './fixture.js';
import { exited, killRepeatedly, lastLocalCommitEnd, spawnRun } from './replicator-child.js';

const TABLES = [
  'public.pgbench_accounts',
  'public.pgbench_branches',
  'public.pgbench_tellers',
  'public.pgbench_history',
];

/**
 * pgbench's TPC-B transaction, written by hand so that every acknowledged commit is known:
 * three updates of rows that every node writes (one branch: every pair of concurrent
 * transactions on two nodes races on it) and an insert into pgbench_history, which carries
 * the writer's node and sequence number as its key and so is the ledger of committed
 * transactions.
 */
function tpcbWriter(node: SandboxNode) {
  let stop = false;
  const committed: number[] = [];
  const done = (async () => {
    let cl: pg.Client | null = null;
    let seq = 0;
    while (!stop) {
      try {
        cl ??= await client(node);
        seq++;
        const aid = 1 + Math.floor(Math.random() * 100_000);
        const tid = 1 + Math.floor(Math.random() * 10);
        const delta = Math.floor(Math.random() * 10_001) - 5000;
        await cl.query('BEGIN');
        await cl.query('UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2', [delta, aid]);
        await cl.query('UPDATE pgbench_tellers SET tbalance = tbalance + $1 WHERE tid = $2', [delta, tid]);
        await cl.query('UPDATE pgbench_branches SET bbalance = bbalance + $1 WHERE bid = 1', [delta]);
        await cl.query(
          'INSERT INTO pgbench_history (tid, bid, aid, delta, mtime, node, seq) VALUES ($1, 1, $2, $3, clock_timestamp(), $4, $5)',
          [tid, aid, delta, node.name, seq],
        );
        await cl.query('COMMIT');
        committed.push(seq);
        await sleep(3);
      } catch {
        await cl?.end().catch(() => {});
        cl = null;
        await sleep(50);
      }
    }
    await cl?.end().catch(() => {});
  })();
  return {
    committed,
    async stop() {
      stop = true;
      await done;
    },
  };
}

describe('multimaster: crashes under a TPC-B workload with conflicts', () => {
  let sb: Sandbox;
  let nodes: SandboxNode[];
  let config: ResolvedConfig;
  let dir: string;
  let configFile: string;
  const children = new Set<ChildProcess>();

  beforeAll(async () => {
    ({ sb, nodes } = await startNodes(['a', 'b']));
    const bin = findPgbench(sb.installation.binDir);
    // The same data on both nodes before init, as users start a mesh (restored everywhere).
    for (const n of nodes) {
      await pgbench(bin, n, ['-i', '-q', '-s', '1']);
      await n.query(
        'ALTER TABLE pgbench_history ADD COLUMN node text NOT NULL, ADD COLUMN seq bigint NOT NULL, ADD PRIMARY KEY (node, seq)',
      );
    }
    config = meshConfig(nodes, { tables: TABLES });
    await initMesh(config);
    dir = mkdtempSync(join(tmpdir(), 'pgfleet-mm-crash-tpcb-'));
    configFile = join(dir, 'mesh.yaml');
    writeFileSync(
      configFile,
      [
        'nodes:',
        ...nodes.map((n) => `  - { name: ${n.name}, conninfo: "${n.conninfo()}" }`),
        `tables: [${TABLES.join(', ')}]`,
        'http: { listen: off }',
        'statusIntervalMs: 200',
        'reconnect: { baseDelayMs: 50, maxDelayMs: 500 }',
      ].join('\n'),
    );
    for (const n of nodes) await n.query(`SELECT pg_create_logical_replication_slot('audit', 'pgoutput')`);
  });

  afterAll(async () => {
    for (const c of children) c.kill('SIGKILL');
    await sb?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('a replicator SIGKILLed 20+ times while both nodes run TPC-B on the same rows loses no transaction, applies none twice, and every table ends equal on both nodes', async () => {
    const writers = nodes.map((n) => tpcbWriter(n));
    const kills = await killRepeatedly(configFile, children, {
      kills: 22,
      budgetMs: 180_000,
      maxLifeMs: 1500,
    });
    for (const w of writers) await w.stop();
    expect(kills).toBeGreaterThanOrEqual(20);
    const acknowledged = writers.map((w) => w.committed.length);
    for (const n of acknowledged) expect(n).toBeGreaterThan(100);

    const { child: final } = spawnRun(configFile);
    children.add(final);
    await quiesce(nodes, 120_000);
    final.kill('SIGTERM');
    expect(await exited(final)).toBe(0);
    children.delete(final);

    // The ledger: on every node, exactly the transactions each writer saw commit, once.
    for (const n of nodes)
      for (const [i, w] of writers.entries()) {
        const origin = nodes[i] as SandboxNode;
        const seqs = (
          await n.query<{ seq: string }>(
            'SELECT seq::text AS seq FROM pgbench_history h WHERE node = $1 ORDER BY h.seq',
            [origin.name],
          )
        ).map((r) => Number(r.seq));
        expect(seqs, `${origin.name}'s ledger on ${n.name}`).toEqual(w.committed);
      }
    // Every table equal on both nodes: conflicting updates converged, under the same checksum as `check`.
    const checks = await checkMesh(config);
    expect(Object.fromEntries(checks.map((c) => [c.table, c.equal]))).toEqual(
      Object.fromEntries(TABLES.map((t) => [t, true])),
    );
    // The workload raced: each node resolved conflicts in the stream and never had to skip anything.
    for (const n of nodes) {
      expect(
        await count(n, 'pgfleet.conflicts', `kind = 'update_differs'`),
        `${n.name}: raced updates`,
      ).toBeGreaterThan(0);
      expect(await count(n, 'pgfleet.dead_letters'), `${n.name}: dead letters`).toBe(0);
    }
    // Exactly-once bookkeeping: each origin ends at the end of the source's last own commit.
    for (const [src, dst] of [
      [nodes[0], nodes[1]],
      [nodes[1], nodes[0]],
    ] as Array<[SandboxNode, SandboxNode]>) {
      const last = await lastLocalCommitEnd(src, 'audit', `pgfleet_${src.name}_${dst.name}`);
      const prog = await dst.query<{ lsn: string }>(
        `SELECT pg_replication_origin_progress($1, true)::text AS lsn`,
        [`pgfleet_${src.name}`],
      );
      expect(prog[0]?.lsn, `origin pgfleet_${src.name} on ${dst.name}`).toBe(last);
    }
  }, 420_000);
});
