import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  loadConfig,
  type ReplicatorHandle,
  type ResolvedConfig,
  startReplicator,
} from '@pgfleet/multimaster';
import type { Sandbox, SandboxNode } from '@pgfleet/sandbox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pgfleetMm } from './cli-runner.js';
import { captureLogs, checkTables, onAll, quiesce, startNodes, writePgpass } from './fixture.js';

/**
 * The README's walkthrough, as a user runs it: its two tables (a uuid key, and a GENERATED
 * ALWAYS AS IDENTITY key with REPLICA IDENTITY FULL, a per-table policy and a row filter
 * for madrid), init, sequence offsets, writes, updates and deletes on every node, a key
 * change through `SET id = DEFAULT`, status and check. Passwords come from a password file
 * (PGPASSFILE), for the CLI and for every session of the replicator, streams included,
 * without node-pg's "pgpass support is deprecated" warning.
 */

const DDL = `
  CREATE TABLE public.accounts (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), owner text, balance numeric(20,2));
  CREATE TABLE public.orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, region text NOT NULL, total numeric);
  ALTER TABLE public.orders REPLICA IDENTITY FULL;`;

describe('multimaster: the README walkthrough with an identity ALWAYS key', () => {
  let sb: Sandbox;
  let paris: SandboxNode;
  let berlin: SandboxNode;
  let madrid: SandboxNode;
  let nodes: SandboxNode[];
  let dir: string;
  let file: string;
  let config: ResolvedConfig;
  let rep: ReplicatorHandle | undefined;
  const logs = captureLogs();
  const savedPassfile = process.env.PGPASSFILE;
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(w.message);

  beforeAll(async () => {
    ({ sb, nodes } = await startNodes(['paris', 'berlin', 'madrid']));
    [paris, berlin, madrid] = nodes as [SandboxNode, SandboxNode, SandboxNode];
    await onAll(nodes, DDL);
    dir = mkdtempSync(join(tmpdir(), 'pgfleet-mm-walk-'));
    file = join(dir, 'mesh.yaml');
    const passfile = join(dir, 'pgpass');
    writePgpass(passfile, nodes);
    process.env.PGPASSFILE = passfile;
    process.on('warning', onWarning);
    const conninfo = (n: SandboxNode) => {
      const f = n.facts();
      return `host=${f.host} port=${f.port} user=${f.user} dbname=${f.database}`;
    };
    writeFileSync(
      file,
      [
        'nodes:',
        ...nodes.map((n) => `  - { name: ${n.name}, conninfo: "${conninfo(n)}" }`),
        'tables:',
        '  - public.accounts',
        '  - name: public.orders',
        '    conflict: last_update_wins',
        '    targets:',
        `      madrid: { rowFilter: "region = 'eu'" }`,
        'http:',
        '  listen: off',
      ].join('\n'),
    );
    config = loadConfig({ file, env: {} });
  });

  afterAll(async () => {
    process.off('warning', onWarning);
    if (savedPassfile === undefined) delete process.env.PGPASSFILE;
    else process.env.PGPASSFILE = savedPassfile;
    await rep?.stop();
    await sb?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('init, sequences and run: inserts, updates, deletes and an identity change on every node converge', async () => {
    const init = await pgfleetMm(['init', '-c', file], { PGPASSWORD: undefined });
    expect(init.code, init.stderr).toBe(0);
    expect(init.stderr).not.toMatch(/deprecat/i);
    expect(init.stdout).toMatch(/mesh ready: 6 edges, 2 tables/);
    const seq = await pgfleetMm(['sequences', '-c', file, '--apply'], { PGPASSWORD: undefined });
    expect(seq.code, seq.stderr).toBe(0);
    rep = startReplicator(config, { logger: logs.logger });

    for (const [i, n] of nodes.entries()) {
      await n.query(
        `INSERT INTO public.orders (region, total) SELECT CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END, g * 10 + ${i} FROM generate_series(1, 4) g`,
      );
      await n.query(`INSERT INTO public.accounts (owner, balance) VALUES ('${n.name}', 100.00)`);
    }
    await quiesce(nodes);
    // Every node updates and deletes orders another node wrote.
    const ids = async (n: SandboxNode, where: string) =>
      (
        await n.query<{ i: string }>(`SELECT id::text AS i FROM public.orders WHERE ${where} ORDER BY id`)
      ).map((r) => r.i);
    // madrid gets only eu orders, but keeps the us orders it wrote itself (filters apply one way).
    const madridsOwnUs = await ids(madrid, `region = 'us'`);
    expect(madridsOwnUs).toHaveLength(2);
    const fromParis = await ids(berlin, `total::int % 10 = 0`);
    const fromBerlin = await ids(paris, `total::int % 10 = 1`);
    expect(fromParis).toHaveLength(4);
    await berlin.query(`UPDATE public.orders SET total = total + 0.5 WHERE id = ANY($1::bigint[])`, [
      fromParis,
    ]);
    await madrid.query(`UPDATE public.orders SET total = total * 2 WHERE id = $1`, [fromBerlin[1]]);
    await paris.query(`DELETE FROM public.orders WHERE id = $1`, [fromBerlin[3]]);
    await paris.query(`UPDATE public.accounts SET balance = balance - 25 WHERE owner = 'berlin'`);
    // A region change moves an order in or out of madrid's filter (insert / delete there).
    await berlin.query(`UPDATE public.orders SET region = 'eu' WHERE id = $1`, [fromParis[0]]);
    await berlin.query(`UPDATE public.orders SET region = 'us' WHERE id = $1`, [fromParis[1]]);
    // The only way to change an identity ALWAYS value: a new one from the sequence.
    const [moved] = await madrid.query<{ id: string }>(
      `UPDATE public.orders SET id = DEFAULT WHERE id = $1 RETURNING id::text AS id`,
      [fromParis[3]],
    );
    await quiesce(nodes);

    expect(rep.status().edges.filter((e) => e.state !== 'streaming')).toEqual([]);
    for (const n of nodes) expect(await n.query('SELECT id FROM pgfleet.dead_letters'), n.name).toEqual([]);
    const rows = async (n: SandboxNode, where = 'true') =>
      (
        await n.query<{ r: string }>(
          `SELECT (id, region, total)::text AS r FROM public.orders WHERE ${where} ORDER BY id`,
        )
      ).map((x) => x.r);
    expect(await rows(berlin)).toEqual(await rows(paris));
    expect(await rows(madrid)).toEqual(
      await rows(paris, `region = 'eu' OR id IN (${madridsOwnUs.join(', ')})`),
    );
    expect(await ids(paris, `id = ${moved?.id}`)).toEqual([moved?.id]);
    expect(await ids(paris, `id = ${fromParis[3]}`)).toEqual([]);
    expect(await rows(paris, `id = ${fromParis[0]}`)).toEqual([`(${fromParis[0]},eu,10.5)`]);

    const [accounts] = await checkTables(config, ['public.accounts']);
    expect(accounts?.equal).toBe(true);
    const check = await pgfleetMm(['check', '-c', file], { PGPASSWORD: undefined });
    expect(check.stderr).not.toMatch(/deprecat/i);
    expect(check.stdout).toMatch(/^OK +public\.accounts /m);
    // orders differ on purpose on madrid (row filter); paris and berlin agree.
    expect(check.stdout).toMatch(/^DIFF public\.orders /m);
    const status = await pgfleetMm(['status', '-c', file, '--json'], { PGPASSWORD: undefined });
    expect(status.code, status.stderr).toBe(0);
    const edges = JSON.parse(status.stdout).edges as Array<{ pausedAt: string | null; error: string | null }>;
    expect(edges.filter((e) => e.pausedAt || e.error)).toEqual([]);
    expect(warnings.filter((w) => /pgpass/i.test(w))).toEqual([]);
  });
});
