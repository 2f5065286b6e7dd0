import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig as loadKeeperConfig } from '@pgfleet/keeper';
import { loadConfig as loadMeshConfig } from '@pgfleet/multimaster';
import { describe, expect, it } from 'vitest';

/**
 * The files under examples/ are what users start from: each one must load with the app's own
 * config loader, the systemd units must pass `systemd-analyze verify`, the HAProxy config
 * `haproxy -c`, and the READMEs must show the same files, not a drifting copy.
 */
const ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../..');
const EX = join(ROOT, 'examples');

/** Lines of `KEY=value` from an env file, as systemd's EnvironmentFile reads them. */
function envFile(file: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (m) env[m[1] as string] = m[2] as string;
  }
  return env;
}

/** A tool from Debian's packages: CI installs it (.ci/run), a developer machine may lack it. */
function tool(name: string): string | null {
  const found = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  if (found.status === 0) return found.stdout.trim();
  if (process.env.CI) throw new Error(`${name} is not installed; .ci/run must install it`);
  return null;
}

describe('examples/keeper', () => {
  const env = envFile(join(EX, 'keeper', 'keeper.env'));

  it('keeper.env holds the token the keepers need', () => {
    expect(Object.keys(env)).toEqual(['PGFLEET_KEEPER_HTTP_TOKEN']);
  });

  it.each(['keeper-a.yaml', 'keeper-b.yaml'])('%s loads as a node keeper of the a + b pair', (file) => {
    const c = loadKeeperConfig({ file: join(EX, 'keeper', file), env });
    expect(c.mode).toBe('node');
    expect([c.node.name, c.peer.name].sort()).toEqual(['a', 'b']);
    expect(c.witness?.url).toBe('http://10.0.0.3:8008');
    // Each names the other as its synchronous standby.
    expect(c.syncStandbyNames).toBe(`ANY 1 (${c.peer.name})`);
    expect(c.http.token).toBe(env.PGFLEET_KEEPER_HTTP_TOKEN);
  });

  it('witness.yaml loads as the witness of a and b', () => {
    const c = loadKeeperConfig({ file: join(EX, 'keeper', 'witness.yaml'), env });
    expect(c.mode).toBe('witness');
    expect(Object.keys(c.members).sort()).toEqual(['a', 'b']);
  });
});

describe('examples/multimaster', () => {
  it('mesh.yaml loads: 3 nodes, a row filter per target, a column list, a per-table policy', () => {
    const env = envFile(join(EX, 'multimaster', 'mm.env'));
    const c = loadMeshConfig({ file: join(EX, 'multimaster', 'mesh.yaml'), env });
    expect(c.nodes.map((n) => n.name)).toEqual(['paris', 'berlin', 'madrid']);
    // mm.env replaces each node's conninfo (with its password).
    for (const n of c.nodes) expect(n.conninfo).toContain('password=');
    const stock = c.tables.find((t) => t.table === 'stock');
    expect(stock?.columns).toEqual(['sku', 'country', 'quantity']);
    expect(stock?.targets.berlin?.rowFilter).toBe("country = 'DE'");
    expect(c.tables.find((t) => t.table === 'orders')?.conflict).toBe('first_update_wins');
    expect(c.tables.find((t) => t.schema === 'catalog')?.table).toBe('*');
    expect(c.conflictLog).toMatchObject({ retentionHours: 720, maxRows: 1_000_000 });
  });
});

describe('examples/systemd', () => {
  const units = readdirSync(join(EX, 'systemd')).filter((f) => f.endsWith('.service'));
  const bins: Record<string, string> = {
    '/usr/local/bin/pgfleet-keeper': join(ROOT, 'apps/keeper/bin/pgfleet-keeper.js'),
    '/usr/local/bin/pgfleet-mm': join(ROOT, 'apps/multimaster/bin/pgfleet-mm.js'),
  };

  it('has a unit per app', () => {
    expect(units.sort()).toEqual(['pgfleet-keeper.service', 'pgfleet-mm.service']);
  });

  it.each(units)(
    '%s keeps comments on lines of their own (systemd reads "# ..." after a value as part of it)',
    (unit) => {
      const text = readFileSync(join(EX, 'systemd', unit), 'utf8');
      const inline = text.split('\n').filter((l) => /^[A-Za-z]+=.*\s[#;]/.test(l));
      expect(inline).toEqual([]);
    },
  );

  it.each(units)('%s passes systemd-analyze verify', (unit) => {
    const analyze = tool('systemd-analyze');
    if (!analyze) return;
    // verify checks that ExecStart exists: point it at this checkout's bin instead of the
    // installed path, the rest of the unit is checked as shipped.
    let text = readFileSync(join(EX, 'systemd', unit), 'utf8');
    for (const [installed, here] of Object.entries(bins)) text = text.replaceAll(installed, here);
    const dir = mkdtempSync(join(tmpdir(), 'pgfleet-unit-'));
    writeFileSync(join(dir, unit), text);
    const res = spawnSync(analyze, ['verify', join(dir, unit)], { encoding: 'utf8' });
    // Unknown keys and bad values are only warnings: any output is a finding.
    expect({ status: res.status, output: `${res.stdout}${res.stderr}`.trim() }).toEqual({
      status: 0,
      output: '',
    });
  });

  it('the keeper README shows examples/systemd/pgfleet-keeper.service as it is', () => {
    const readme = readFileSync(join(ROOT, 'apps/keeper/README.md'), 'utf8');
    const unit = readFileSync(join(EX, 'systemd', 'pgfleet-keeper.service'), 'utf8');
    expect(readme).toContain(['```ini', unit.trimEnd(), '```'].join('\n'));
  });
});

describe('examples/haproxy', () => {
  it('haproxy.cfg passes haproxy -c and routes writes by /primary', () => {
    const file = join(EX, 'haproxy', 'haproxy.cfg');
    const text = readFileSync(file, 'utf8');
    expect(text).toMatch(/listen postgres_rw[\s\S]*option httpchk GET \/primary/);
    const haproxy = tool('haproxy');
    if (!haproxy) return;
    expect(execFileSync(haproxy, ['-c', '-f', file], { encoding: 'utf8' })).toMatch(
      /Configuration file is valid/,
    );
  });
});
