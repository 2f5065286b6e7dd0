import { rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { freePort, Sandbox, type SandboxNode } from '@pgfleet/sandbox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, writeConfig } from './fixture.js';

/**
 * Issue 3, scenario 11: `pgfleet-keeper` given bad input exits non-zero with a message naming
 * the key or node, and never prints a password. Every config carries one, so every case checks.
 */

const SECRET = 'Sup3rSecretPassw0rd';

describe('keeper e2e: bad input to the CLI', () => {
  let sb: Sandbox;
  let a: SandboxNode;
  let closedPort: number;
  const dirs: string[] = [];

  function config(raw: Record<string, unknown>): string {
    const file = writeConfig(raw);
    dirs.push(dirname(file));
    return file;
  }

  /** A valid config for node a whose peer is `peerConninfo`. */
  function valid(over: Record<string, unknown> = {}): Record<string, unknown> {
    return {
      node: { name: 'a', conninfo: a.conninfo() },
      peer: { name: 'b', conninfo: `host=127.0.0.1 port=${closedPort} user=postgres password=${SECRET}` },
      interval: '300ms',
      http: { listen: '127.0.0.1:0' },
      ...over,
    };
  }

  beforeAll(async () => {
    sb = await Sandbox.create({ name: 'e2e-keeper-badcfg' });
    a = await sb.startNode('a');
    closedPort = await freePort();
  });

  afterAll(async () => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
    await sb?.destroy();
  });

  async function expectRejected(args: string[], names: RegExp) {
    const r = await runCli(args);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(names);
    expect(`${r.stdout}${r.stderr}`).not.toContain(SECRET);
    expect(`${r.stdout}${r.stderr}`).not.toContain(a.facts().password);
    return r;
  }

  it('11a. missing key: exits 2 naming the key', async () => {
    const raw = valid();
    raw.node = { conninfo: `${a.conninfo()}` };
    await expectRejected(['run', '--config', config(raw)], /missing key "node\.name"/);
  });

  it('11b. unknown key: exits 2 naming the key', async () => {
    await expectRejected(['run', '--config', config(valid({ intervall: '1s' }))], /unknown key "intervall"/);
  });

  it('11c. bad duration: exits 2 naming the key and the value', async () => {
    await expectRejected(
      ['run', '--config', config(valid({ interval: '5 parsecs' }))],
      /"interval": bad duration "5 parsecs"/,
    );
  });

  it('11d. local node refuses the credentials: run exits 2 naming the node', async () => {
    const wrong = a.conninfo().replace(/password=\S+/, `password=${SECRET}`);
    await expectRejected(
      ['run', '--config', config(valid({ node: { name: 'a', conninfo: wrong } }))],
      /node\.conninfo: node a answered: password authentication failed for user "postgres" \(28P01\)/,
    );
  });

  it('11e. local host does not resolve: run exits 2 naming the node', async () => {
    await expectRejected(
      [
        'run',
        '--config',
        config(
          valid({
            node: { name: 'a', conninfo: `host=no-such-host.invalid user=postgres password=${SECRET}` },
          }),
        ),
      ],
      /node\.conninfo: node a: host not found/,
    );
  });

  it('11f. unreachable peer: check exits 2 naming the node', async () => {
    const r = await expectRejected(['check', '--config', config(valid())], /peer\.conninfo: node b is down/);
    expect(r.stdout).toMatch(/node\.conninfo: node a is primary/);
  });
});
