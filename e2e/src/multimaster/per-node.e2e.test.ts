import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  checkMesh,
  type EdgeDbStatus,
  initMesh,
  meshStatus,
  type ResolvedConfig,
  startReplicator,
} from '@pgfleet/multimaster';
import type { Sandbox, SandboxNode } from '@pgfleet/sandbox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../support/eventually.js';
import { pgfleetMm } from './cli-runner.js';
import { captureLogs, count, meshConfig, onAll, quiesce, sleep, startNodes } from './fixture.js';
import { LEDGER_DDL, ledgerAudit, ledgerWriter } from './ha-fixture.js';

/**
 * Issue 11: one replicator per node (`pgfleet-mm run --node <name>`), each driving only the
 * edges into its node, as native subscriptions and Spock apply on each node. A lost
 * replicator stops only its own edges; two never drive one edge.
 */

const ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../..');
const CLI = ['--conditions=source', '--import', 'tsx', 'apps/multimaster/src/cli.ts'];

/** `pgfleet-mm run --node <node>` as a child process; `ready` once it logged its start. */
function spawnRun(configFile: string, node: string): { child: ChildProcess; ready: Promise<void> } {
  const child = spawn(
    process.execPath,
    [...CLI, 'run', '-c', configFile, '--node', node, '--log-level', 'info'],
    {
      cwd: ROOT,
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  const ready = new Promise<void>((res) => {
    let seen = '';
    child.stderr?.on('data', (d: Buffer) => {
      if (process.env.PGFLEET_TEST_LOG) process.stderr.write(d);
      seen = (seen + d.toString('utf8')).slice(-8192);
      if (seen.includes('replicator starting')) res();
    });
    child.once('exit', () => res());
  });
  return { child, ready };
}

function exited(child: ChildProcess): Promise<number | string | null> {
  if (child.exitCode !== null || child.signalCode !== null)
    return Promise.resolve(child.exitCode ?? child.signalCode);
  return new Promise((res) => child.once('exit', (code, sig) => res(code ?? sig)));
}

const edge = (st: EdgeDbStatus[], id: string) => st.find((e) => e.edge === id) as EdgeDbStatus;

describe('multimaster: one replicator per node (run --node)', () => {
  let sb: Sandbox;
  let nodes: SandboxNode[];
  let config: ResolvedConfig;
  let dir: string;
  let file: string;
  const children = new Map<string, ChildProcess>();

  beforeAll(async () => {
    ({ sb, nodes } = await startNodes(['a', 'b', 'c']));
    await onAll(nodes, LEDGER_DDL);
    config = meshConfig(nodes, { tables: ['k.ledger'] });
    await initMesh(config);
    dir = mkdtempSync(join(tmpdir(), 'pgfleet-mm-per-node-'));
    file = join(dir, 'mesh.yaml');
    writeFileSync(
      file,
      [
        'nodes:',
        ...nodes.map((n) => `  - { name: ${n.name}, conninfo: "${n.conninfo()}" }`),
        'tables: [k.ledger]',
        'http: { listen: off }',
        'statusIntervalMs: 200',
        'reconnect: { baseDelayMs: 50, maxDelayMs: 500 }',
      ].join('\n'),
    );
  });

  afterAll(async () => {
    for (const c of children.values()) c.kill('SIGKILL');
    await sb?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function start(node: string): Promise<void> {
    const { child, ready } = spawnRun(file, node);
    children.set(node, child);
    await ready;
  }

  it('each replicator drives only the edges into its node; a second one is refused by name; a killed one stops only its edges, whose lag shows, and they catch up when it returns', async () => {
    for (const n of ['a', 'b', 'c']) await start(n);
    const [a, b, c] = nodes as [SandboxNode, SandboxNode, SandboxNode];
    const writers = nodes.map((n, i) => ledgerWriter(n.name, n.conninfo(), (i + 1) * 1_000_000, 10));

    // Every edge is claimed by the replicator of its target, and `status` names it.
    const held = await eventually(
      'every edge held by its target node replicator',
      () => meshStatus(config),
      (st) => st.every((e) => e.holder?.includes(`run --node ${e.target})`) === true),
      { timeoutMs: 60_000, intervalMs: 200 },
    );
    expect(held.map((e) => e.edge).sort()).toEqual(['a_b', 'a_c', 'b_a', 'b_c', 'c_a', 'c_b']);
    const pidOfA = children.get('a')?.pid;
    expect(edge(held, 'b_a').holder).toContain(`pid ${pidOfA} `);

    // A second replicator for node a gets nowhere, and says who holds the edges.
    const logs = captureLogs();
    const second = startReplicator(config, { logger: logs.logger, node: 'a' });
    try {
      const refused = await eventually(
        'the second replicator to be refused',
        async () => second.status().edges,
        (edges) => edges.length === 2 && edges.every((e) => e.lastError?.code === 'EDGE_CLAIMED'),
        { timeoutMs: 30_000, intervalMs: 100 },
      );
      for (const e of refused) {
        expect(e.state).toBe('reconnecting');
        expect(e.lastError?.message).toMatch(
          new RegExp(
            `^edge ${e.edge} is driven by another replicator on a: .* pid ${pidOfA} \\(run --node a\\)`,
          ),
        );
        expect(e.appliedTransactions).toBe(0);
      }
    } finally {
      await second.stop();
    }
    const cli = await pgfleetMm(['status', '-c', file]);
    expect(cli.stdout).toMatch(/b->a\s+true.*run --node a\)/);

    // c's replicator dies: edges into a and b keep flowing, those into c stop and show it.
    const cc = children.get('c') as ChildProcess;
    cc.kill('SIGKILL');
    expect(await exited(cc)).toBe('SIGKILL');
    children.delete('c');
    await a.query(`INSERT INTO k.ledger VALUES (9000001, 'probe', 0)`);
    await eventually(
      'a probe row on b',
      () => count(b, 'k.ledger', 'id = 9000001'),
      (n) => n === 1,
      {
        timeoutMs: 30_000,
      },
    );
    await sleep(1000);
    expect(await count(c, 'k.ledger', 'id = 9000001')).toBe(0);
    const stopped = await eventually(
      'edges into c idle and behind',
      () => meshStatus(config),
      (st) => ['a_c', 'b_c'].every((id) => edge(st, id).holder === null && (edge(st, id).lagBytes ?? 0) > 0),
      { timeoutMs: 30_000, intervalMs: 200 },
    );
    for (const id of ['a_c', 'b_c']) expect(edge(stopped, id).active, id).toBe(false);
    for (const id of ['a_b', 'b_a', 'c_a', 'c_b']) expect(edge(stopped, id).holder, id).not.toBeNull();

    await start('c');
    await eventually(
      'the probe row on c',
      () => count(c, 'k.ledger', 'id = 9000001'),
      (n) => n === 1,
      {
        timeoutMs: 60_000,
      },
    );
    for (const w of writers) await w.stop();
    await quiesce(nodes, 60_000);
    const checks = await checkMesh(config);
    expect(checks.map((t) => [t.table, t.equal])).toEqual([['k.ledger', true]]);
    for (const n of nodes) {
      const audit = await ledgerAudit((sql) => n.query(sql), writers, [9_000_001]);
      expect(audit.lost, n.name).toEqual([]);
      expect(audit.invented, n.name).toEqual([]);
      expect(await count(n, 'pgfleet.conflicts'), n.name).toBe(0);
    }
  });
});
