import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Sandbox, SandboxNode } from '@pgfleet/sandbox';
import { Sandbox as SandboxClass } from '@pgfleet/sandbox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../..');
const CLI = ['--conditions=source', '--import', 'tsx', 'apps/multimaster/src/cli.ts'];

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

function pgfleetMm(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((res) => {
    execFile(
      process.execPath,
      [...CLI, ...args],
      { cwd: ROOT, env: { ...process.env, ...env }, timeout: 60_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        res({ code, stdout, stderr });
      },
    );
  });
}

/** Everything init could have created on a node. */
async function objects(n: SandboxNode): Promise<Record<string, number | boolean>> {
  const [r] = await n.query<Record<string, number | boolean>>(
    `SELECT (SELECT count(*)::int FROM pg_replication_slots) AS slots,
            (SELECT count(*)::int FROM pg_publication) AS publications,
            (SELECT count(*)::int FROM pg_replication_origin) AS origins,
            to_regnamespace('pgfleet') IS NOT NULL AS schema`,
  );
  return r as Record<string, number | boolean>;
}

describe('multimaster: bad input through the CLI', () => {
  let sb: Sandbox;
  let a: SandboxNode;
  let r: SandboxNode;
  let dir: string;

  beforeAll(async () => {
    sb = await SandboxClass.create({ name: 'mm-e2e-cli' });
    a = await sb.startNode('a', { logical: true });
    r = await sb.startNode('r'); // wal_level = replica, track_commit_timestamp off
    for (const n of [a, r])
      await n.query(
        'CREATE SCHEMA p; CREATE TABLE p.nokey (v text); CREATE TABLE p.ok (id int PRIMARY KEY, v text)',
      );
    dir = mkdtempSync(join(tmpdir(), 'pgfleet-mm-cli-'));
  });

  afterAll(async () => {
    await sb?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const write = (name: string, text: string) => {
    const file = join(dir, name);
    writeFileSync(file, text);
    return file;
  };

  it('13: a bad config exits 2 naming every bad key, without printing the password', async () => {
    const file = write(
      'bad.yaml',
      [
        'nodes:',
        '  - { name: Bad-Name, conninfo: "host=127.0.0.1 password=hunter2secret" }',
        '  - { name: b, conninfo: "host=127.0.0.1 password=hunter2secret", rank: -1 }',
        'tables: []',
        'conflict: newest_wins',
        'surprise: 1',
      ].join('\n'),
    );
    const res = await pgfleetMm(['init', '-c', file]);
    expect(res.code).toBe(2);
    for (const key of ['nodes[0].name', 'nodes[1].rank', 'tables', 'conflict', 'surprise'])
      expect(res.stderr, key).toContain(key);
    expect(res.stdout + res.stderr).not.toContain('hunter2secret');

    const missing = await pgfleetMm(['status', '-c', join(dir, 'nope.yaml')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('cannot read config file');
    const noConfig = await pgfleetMm(['run'], { PGFLEET_MM_CONFIG: '' });
    expect(noConfig.code).toBe(2);
    expect(noConfig.stderr).toContain('--config');
  });

  it('13: init with a keyless table, a wal_level=replica node and an unreachable node exits 3, names every problem, creates nothing and never prints a password', async () => {
    const file = write(
      'problems.yaml',
      [
        'nodes:',
        `  - { name: a, conninfo: "${a.conninfo()}" }`,
        `  - { name: r, conninfo: "${r.conninfo()}" }`,
        '  - { name: u, conninfo: "host=127.0.0.1 port=1 user=x password=topsecret dbname=x connect_timeout=2" }',
        'tables: [p.nokey, p.ok]',
      ].join('\n'),
    );
    const res = await pgfleetMm(['init', '-c', file]);
    expect(res.code).toBe(3);
    const err = res.stderr;
    expect(err).toContain('nothing created');
    expect(err).toMatch(/- a p\.nokey: no primary key/);
    expect(err).toMatch(/- r p\.nokey: no primary key/);
    expect(err).toMatch(/- r: wal_level is replica/);
    expect(err).toMatch(/- r: track_commit_timestamp is off/);
    expect(err).toMatch(/- u: .*(refused|ECONNREFUSED|connect)/i);
    expect(err).not.toMatch(/- a: /); // a itself is fine
    const out = res.stdout + err;
    for (const secret of ['topsecret', a.facts().password, r.facts().password])
      expect(out).not.toContain(secret);
    for (const n of [a, r])
      expect(await objects(n), n.name).toEqual({ slots: 0, publications: 0, origins: 0, schema: false });

    // With the JSON flag the same problems come as data on stdout.
    const json = await pgfleetMm(['init', '-c', file, '--json']);
    expect(json.code).toBe(3);
    const problems = JSON.parse(json.stdout).problems as Array<{ node: string; table?: string }>;
    expect(new Set(problems.map((p) => p.node))).toEqual(new Set(['a', 'r', 'u']));
  });
});
