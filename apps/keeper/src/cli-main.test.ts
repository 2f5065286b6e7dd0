import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { captureStdio } from '@pgfleet/cli/testing';
import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { describeOperation, EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, formatStatusTable, main } from './cli-main.js';
import { startHttpServer } from './http-server.js';
import type { KeeperStatus } from './state.js';

const capture = captureStdio;

afterEach(() => vi.restoreAllMocks());

function yaml(lines: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'keeper-cli-'));
  const file = join(dir, 'keeper.yaml');
  writeFileSync(file, lines.join('\n'));
  return file;
}

const good = [
  'node:',
  '  name: a',
  '  conninfo: "host=127.0.0.1 port=1 user=postgres password=s3cret"',
  'peer:',
  '  name: b',
  '  conninfo: "host=127.0.0.1 port=2 user=postgres password=s3cret"',
];

describe('conventions', () => {
  it('prints the version and exits 0', async () => {
    const io = capture();
    expect(await main(['--version'], {})).toBe(EXIT_OK);
    expect(io.out()).toMatch(/^pgfleet-keeper \d+\.\d+\.\d+\n$/);
  });

  it.each([
    'run',
    'check',
    'status',
    'pause',
    'resume',
    'switchover',
    'failover',
    'rejoin',
    'list',
    'history',
  ])('%s --help shows its own usage and an example, not the global help', async (command) => {
    const io = capture();
    expect(await main([command, '--help'], {})).toBe(EXIT_OK);
    expect(io.out()).toMatch(new RegExp(`^pgfleet-keeper ${command}: `));
    expect(io.out()).toMatch(new RegExp(`^Examples:\n {2}.*pgfleet-keeper ${command}`, 'm'));
    expect(io.out()).not.toMatch(/^Commands:/m);
  });

  it.each(['list', 'history'])('%s without dcs.etcd says what it needs and exits 2', async (command) => {
    const io = capture();
    expect(await main([command, '--config', yaml(good)], {})).toBe(EXIT_USAGE);
    expect(io.err()).toMatch(new RegExp(`^pgfleet-keeper ${command}: the configuration has no dcs.etcd`));
  });

  it('list names the etcd endpoints it could not read, exit 1', async () => {
    const io = capture();
    const file = yaml([
      'node: { name: a, conninfo: "host=127.0.0.1 port=1 user=postgres" }',
      // Port 9 (discard) on loopback: nothing listens, refused at once.
      'dcs: { etcd: { endpoints: ["http://127.0.0.1:9"], requestTimeout: 500ms } }',
      'cluster: { members: [{ name: a }, { name: b, conninfo: "host=127.0.0.1 port=2 user=postgres" }] }',
    ]);
    expect(await main(['list', '--config', file], {})).toBe(EXIT_RUNTIME);
    expect(io.err()).toMatch(
      /^pgfleet-keeper list: cannot read the cluster from etcd \(http:\/\/127\.0\.0\.1:9\): /,
    );
  });

  it('help <command> is the same as <command> --help', async () => {
    const io = capture();
    expect(await main(['help', 'rejoin'], {})).toBe(EXIT_OK);
    expect(io.out()).toMatch(/^pgfleet-keeper rejoin: /);
  });

  it('check --json prints every node with the reason, without passwords', async () => {
    const io = capture();
    expect(await main(['check', '--json', '--config', yaml(good)], {})).toBe(EXIT_USAGE);
    const report = JSON.parse(io.out());
    expect(report.ok).toBe(false);
    expect(report.nodes.map((n: { key: string }) => n.key)).toEqual(['node.conninfo', 'peer.conninfo']);
    expect(report.nodes[0].problem).not.toBeNull();
    expect(io.out()).not.toContain('s3cret');
  });

  it('describes operation results for people', () => {
    expect(describeOperation('failover', true, { promoted: 'b', timeline: 2, forced: true })).toBe(
      'failover done: b is primary on timeline 2 (forced)',
    );
    expect(describeOperation('switchover', false, { error: 'standby keeper refused: lag' })).toBe(
      'switchover failed: standby keeper refused: lag',
    );
  });
});

describe('main exit codes', () => {
  it.each<[string, string[], number, RegExp]>([
    ['--help', ['--help'], EXIT_OK, /Exit codes:/],
    ['unexpected argument', ['status', 'now'], EXIT_USAGE, /unexpected argument "now"/],
    ['no command', [], EXIT_USAGE, /missing command/],
    ['unknown command', ['promote-everything'], EXIT_USAGE, /unknown command/],
    ['missing config file', ['run', '--config', '/nonexistent/k.yaml'], EXIT_USAGE, /\/nonexistent\/k\.yaml/],
    [
      'unknown key',
      ['run', '--config', yaml([...good, 'intervall: 1s'])],
      EXIT_USAGE,
      /unknown key "intervall"/,
    ],
    [
      'bad duration',
      ['run', '--config', yaml([...good, 'interval: soon'])],
      EXIT_USAGE,
      /"interval": bad duration/,
    ],
    ['missing key', ['run', '--config', yaml(good.slice(0, 3))], EXIT_USAGE, /"peer.conninfo"/],
    [
      'unknown flag',
      ['run', '--config', yaml(good), '--colour', 'red'],
      EXIT_USAGE,
      /unknown option --colour/,
    ],
    [
      'unreachable nodes (check)',
      ['check', '--config', yaml(good)],
      EXIT_USAGE,
      /node.conninfo: node a is down.*\n.*peer.conninfo: node b is down/,
    ],
    [
      'keeper unreachable (status)',
      ['status', '--url', 'http://127.0.0.1:1'],
      EXIT_RUNTIME,
      /cannot reach the keeper/,
    ],
  ])('%s', async (_name, argv, code, message) => {
    const io = capture();
    expect(await main(argv, {})).toBe(code);
    const text = io.out() + io.err();
    expect(text).toMatch(message);
    expect(text).not.toContain('s3cret');
  });
});

describe('status', () => {
  const status: KeeperStatus = {
    node: 'b',
    mode: 'node',
    role: 'standby',
    roleSince: '2024-01-01T00:00:00.000Z',
    roleReason: 'pg_is_in_recovery() = true',
    timeline: 1,
    lsn: '0/3000060',
    fenced: false,
    fenceReason: null,
    writable: false,
    lease: 'not held: not a primary yet',
    paused: false,
    healthy: true,
    streaming: true,
    lagBytes: 0,
    replayPaused: false,
    peer: { name: 'a', role: 'primary', timeline: 1, consecutiveFailures: 0, lastProbeLatencyMs: 4 },
    sync: { configured: 'ANY 1 (b)', current: null, degraded: false, observation: 'sync' },
    decision: { kind: 'wait', reason: 'primary reachable', at: '2024-01-01T00:00:01.000Z' },
    lastIterationAt: '2024-01-01T00:00:01.000Z',
    lastError: null,
    counters: { promotions: 0, degrades: 0, restores: 0, fences: 0, serverStops: 0 },
  };

  it('formats a readable table', () => {
    const table = formatStatusTable(status);
    expect(table).toMatch(/^node +b \(node mode\)$/m);
    expect(table).toMatch(/^role +standby since/m);
    expect(table).toMatch(/^lag +0 B$/m);
    expect(table).toMatch(/^decision +wait: primary reachable$/m);
  });

  it('reads /status from a running keeper, as a table or as JSON', async () => {
    const server = await startHttpServer(
      {
        status: () => status,
        alive: () => true,
        metrics: async () => ({ contentType: 'text/plain', body: '' }),
        post: {},
      },
      { host: '127.0.0.1', port: 0, logger: pino({ level: 'silent' }) },
    );
    try {
      let io = capture();
      expect(await main(['status', '--url', server.url], {})).toBe(EXIT_OK);
      expect(io.out()).toMatch(/^peer +a: primary \(timeline 1\)/m);
      vi.restoreAllMocks();
      io = capture();
      expect(await main(['status', '--json', '--url', server.url], {})).toBe(EXIT_OK);
      expect(JSON.parse(io.out())).toEqual(status);
    } finally {
      await server.close();
    }
  });
});
