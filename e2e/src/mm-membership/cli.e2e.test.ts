import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Sandbox, SandboxNode } from '@pgfleet/sandbox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { onAll, startNodes } from '../multimaster/fixture.js';

const ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../..');
const CLI = ['--conditions=source', '--import', 'tsx', 'apps/multimaster/src/cli.ts'];

function pgfleetMm(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    execFile(process.execPath, [...CLI, ...args], { cwd: ROOT, timeout: 120_000 }, (err, stdout, stderr) => {
      res({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

describe('multimaster membership through the CLI', () => {
  let sb: Sandbox;
  let a: SandboxNode;
  let b: SandboxNode;
  let c: SandboxNode;
  let dir: string;
  let two: string;
  let three: string;

  beforeAll(async () => {
    let nodes: SandboxNode[];
    ({ sb, nodes } = await startNodes(['a', 'b', 'c']));
    [a, b, c] = nodes as [SandboxNode, SandboxNode, SandboxNode];
    await onAll(nodes, 'CREATE SCHEMA app; CREATE TABLE app.t (id bigserial PRIMARY KEY, v text)');
    dir = mkdtempSync(join(tmpdir(), 'pgfleet-mm-membership-'));
    const yaml = (ns: SandboxNode[]) =>
      `nodes:\n${ns.map((n) => `  - name: ${n.name}\n    conninfo: "${n.conninfo()}"\n`).join('')}tables: [app.t]\nhttp: { listen: off }\n`;
    two = join(dir, 'two.yaml');
    three = join(dir, 'three.yaml');
    writeFileSync(two, yaml([a, b]));
    writeFileSync(three, yaml([a, b, c]));
  });
  afterAll(async () => {
    await sb?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('sequences: a dry run changes nothing, --apply aligns, a second --apply finds nothing to do', async () => {
    expect((await pgfleetMm(['init', '-c', two])).code).toBe(0);
    const dry = await pgfleetMm(['sequences', '-c', two]);
    expect(dry).toMatchObject({ code: 0, stdout: expect.stringContaining('dry run (stride 2)') });
    expect(dry.stdout).toMatch(/a\s+app\.t_id_seq\s+alter\s+INCREMENT 1 → 2, next 1 → 1/);
    expect(
      await a.query(`SELECT increment_by::int AS i FROM pg_sequences WHERE sequencename = 't_id_seq'`),
    ).toEqual([{ i: 1 }]);
    expect((await pgfleetMm(['sequences', '-c', two, '--apply'])).code).toBe(0);
    const again = await pgfleetMm(['sequences', '-c', two, '--apply', '--json']);
    const report = JSON.parse(again.stdout) as { steps: Array<{ node: string; action: string }> };
    expect(report.steps.map((s) => [s.node, s.action])).toEqual([
      ['a', 'unchanged'],
      ['b', 'unchanged'],
    ]);
    expect((await pgfleetMm(['sequences', '-c', two, '--stride', '1'])).code).toBe(2);
  });

  it('add-node copies with progress, is idempotent; remove-node drops what it made', async () => {
    await a.query(`INSERT INTO app.t (v) SELECT 'row ' || g FROM generate_series(1, 200) g`);
    expect(await pgfleetMm(['add-node', '-c', three])).toMatchObject({
      code: 2,
      stderr: expect.stringContaining('--node'),
    });
    const add = await pgfleetMm(['add-node', '-c', three, '--node', 'c']);
    expect(add.code, add.stderr).toBe(0);
    expect(add.stdout).toContain('c joined from a at ');
    expect(add.stderr).toMatch(/copy app\.t .*200 rows, .* done/);
    expect(await c.query('SELECT count(*)::int AS n, sum(id)::int AS s FROM app.t')).toEqual(
      await a.query('SELECT count(*)::int AS n, sum(id)::int AS s FROM app.t'),
    );
    const again = await pgfleetMm(['add-node', '-c', three, '--node', 'c']);
    expect(again).toMatchObject({ code: 0, stdout: expect.stringContaining('had already joined') });

    const rm = await pgfleetMm(['remove-node', '-c', three, '--node', 'c']);
    expect(rm.code, rm.stderr).toBe(0);
    expect(rm.stdout).toMatch(/a\s+dropped slot pgfleet_a_c, publication pgfleet_a_c, origin pgfleet_c/);
    expect(await c.query(`SELECT count(*)::int AS n FROM pg_replication_slots`)).toEqual([{ n: 0 }]);
    expect(await b.query(`SELECT slot_name FROM pg_replication_slots ORDER BY 1`)).toEqual([
      { slot_name: 'pgfleet_b_a' },
    ]);
  });
});
