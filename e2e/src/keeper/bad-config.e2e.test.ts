import { once } from 'node:events';
import { rmSync } from 'node:fs';
import { createServer } from 'node:net';
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
  let b: SandboxNode;
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
      peer: { name: 'c', conninfo: `host=127.0.0.1 port=${closedPort} user=postgres password=${SECRET}` },
      interval: '300ms',
      http: { listen: '127.0.0.1:0' },
      ...over,
    };
  }

  beforeAll(async () => {
    sb = await Sandbox.create({ name: 'e2e-keeper-badcfg' });
    a = await sb.startNode('a');
    b = await sb.createStandby('b', a);
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
    const r = await expectRejected(['check', '--config', config(valid())], /peer\.conninfo: node c is down/);
    expect(r.stdout).toMatch(/node\.conninfo: node a is primary/);
  });

  /** The standby b's keeper config, its peer a reached with `peerConninfo`. */
  const standbyConfig = (peerConninfo: string) =>
    valid({ node: { name: 'b', conninfo: b.conninfo() }, peer: { name: 'a', conninfo: peerConninfo } });

  it('issue 9: a wrong password for the peer is an answer from a live server; run refuses to start on it', async () => {
    const wrong = a.conninfo().replace(/password=\S+/, `password=${SECRET}`);
    const r = await expectRejected(
      ['run', '--config', config(standbyConfig(wrong))],
      /peer\.conninfo: node a answered: password authentication failed for user "postgres" \(28P01\): check the user and password .* in peer\.conninfo \(fix it, or start anyway with --force\)/,
    );
    expect(r.stderr).not.toMatch(/is down/);
  });

  it('issue 9: a wrong port for the peer while this standby streams from it: run refuses to start', async () => {
    const wrongPort = a.conninfo().replace(/port=\d+/, `port=${closedPort}`);
    await expectRejected(
      ['run', '--config', config(standbyConfig(wrongPort))],
      /peer\.conninfo: node a refuses connections \(connection refused.*\), yet this standby streams from its primary at 127\.0\.0\.1:\d+: peer\.conninfo does not point at that server/,
    );
  });

  it('issue 9: no password anywhere names the conninfo, not SASL internals', async () => {
    const noPassword = a.conninfo().replace(/ password=\S+/, '');
    const r = await runCli(
      ['check', '--config', config(valid({ node: { name: 'a', conninfo: noPassword } }))],
      {
        PGPASSFILE: '/nonexistent',
      },
    );
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/node\.conninfo: node a: .*the server asks for a password and none is given/);
    expect(r.stderr).not.toMatch(/SASL|SCRAM/);
  });

  it('issue 9: an HTTP port already in use names http.listen', async () => {
    const port = await freePort();
    const taken = createServer().listen(port, '127.0.0.1');
    await once(taken, 'listening');
    try {
      const r = await runCli(['run', '--config', config(valid({ http: { listen: `127.0.0.1:${port}` } }))]);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(new RegExp(`http\\.listen 127\\.0\\.0\\.1:${port}: address already in use`));
    } finally {
      taken.close();
    }
  });
});
