import { setTimeout as sleep } from 'node:timers/promises';
import { checkMesh, initMesh, resolveConfig, startReplicator } from '@pgfleet/multimaster';
import type { Sandbox, SandboxNode } from '@pgfleet/sandbox';
import type { Logger } from 'pino';
import { eventually } from '../support/eventually.js';

type Say = (line?: string) => void;

const DDL = `CREATE TABLE public.accounts (
  id int PRIMARY KEY,
  owner text NOT NULL,
  balance numeric(12,2) NOT NULL,
  updated_on text NOT NULL
)`;

async function rowOn(node: SandboxNode, id: number): Promise<string> {
  const [r] = await node.query<{ owner: string; balance: string; updated_on: string }>(
    'SELECT owner, balance, updated_on FROM public.accounts WHERE id = $1',
    [id],
  );
  return r ? `${r.owner} ${r.balance} (written on ${r.updated_on})` : '(missing)';
}

/**
 * The multimaster half of the demo: a 3-node mesh, writes on every node, convergence shown
 * by checksums, then one update/update conflict resolved the same way on every node.
 */
export async function meshDemo(sb: Sandbox, logger: Logger, say: Say): Promise<void> {
  say('== multimaster: 3-node mesh ==');
  const nodes = await sb.startLogicalNodes(['n1', 'n2', 'n3']);
  for (const n of nodes) await n.query(DDL);
  const config = resolveConfig({
    nodes: nodes.map((n) => ({ name: n.name, conninfo: n.conninfo() })),
    tables: ['public.accounts'],
    http: { listen: false },
    statusIntervalMs: 200,
  });
  const report = await initMesh(config, { logger });
  say(
    `  pgfleet-mm init: ${report.edges.length} edges (${report.edges.map((e) => e.id).join(' ')}); created ` +
      `${report.created.slots.length} slots, ${report.created.publications.length} publications, ` +
      `${report.created.origins.length} origins`,
  );
  let replicator = startReplicator(config, { logger });
  try {
    say('  writing 100 rows on each node (disjoint keys), plus updates and deletes...');
    for (const [i, n] of nodes.entries()) {
      const base = (i + 1) * 1000;
      await n.query(
        `INSERT INTO public.accounts SELECT g, $2 || '-' || g, g * 10, $2 FROM generate_series($1::int, $1::int + 99) g`,
        [base, n.name],
      );
      await n.query(`UPDATE public.accounts SET balance = balance + 1 WHERE id BETWEEN $1 AND $1 + 9`, [
        base,
      ]);
      await n.query(`DELETE FROM public.accounts WHERE id BETWEEN $1 + 90 AND $1 + 99`, [base]);
    }
    const t0 = performance.now();
    const checks = await eventually(
      'the mesh to converge',
      () => checkMesh(config),
      (c) => c.every((t) => t.equal && Object.values(t.nodes).every((v) => v?.rows === 270)),
      { timeoutMs: 60_000, intervalMs: 100 },
    );
    say(`  converged in ${(performance.now() - t0).toFixed(0)} ms:`);
    for (const t of checks) {
      for (const [name, v] of Object.entries(t.nodes))
        say(`    ${t.table} on ${name}: ${v?.rows} rows, checksum ${v?.checksum}`);
    }

    say();
    say('  conflict: the same row updated on n1 and n2 while the replicator is stopped');
    await replicator.stop();
    await nodes[0]!.query(`UPDATE public.accounts SET balance = 111, updated_on = 'n1' WHERE id = 1000`);
    await sleep(20);
    await nodes[1]!.query(`UPDATE public.accounts SET balance = 222, updated_on = 'n2' WHERE id = 1000`);
    say(`    before: n1 has ${await rowOn(nodes[0]!, 1000)}, n2 has ${await rowOn(nodes[1]!, 1000)}`);
    replicator = startReplicator(config, { logger });
    await eventually(
      'the conflict to resolve everywhere',
      async () => Promise.all(nodes.map((n) => rowOn(n, 1000))),
      (rows) => rows.every((r) => r === rows[0]) && rows[0]?.includes('n2') === true,
      { timeoutMs: 60_000, intervalMs: 100 },
    );
    for (const n of nodes) say(`    after:  ${n.name} has ${await rowOn(n, 1000)}`);
    for (const n of nodes) {
      const rows = await n.query<{ kind: string; resolution: string }>(
        'SELECT kind, resolution FROM pgfleet.conflicts ORDER BY 1, 2',
      );
      if (rows.length)
        say(`    ${n.name} pgfleet.conflicts: ${rows.map((r) => `${r.kind} -> ${r.resolution}`).join(', ')}`);
    }
    say('    (last_update_wins: the later commit, made on n2, wins on every node)');
  } finally {
    await replicator.stop();
  }
  say();
}
