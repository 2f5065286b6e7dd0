import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '@pgfleet/connection';
import { describe, expect, it } from 'vitest';
import { CONFIG_KEYS, envName, loadConfig, parseTableName, resolveConfig } from './config.js';

const nodes = [
  { name: 'a', conninfo: 'host=h1 password=s3cret' },
  { name: 'b', conninfo: 'host=h2' },
];

function errorOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error('no error');
}

describe('resolveConfig', () => {
  it('fills defaults: rank = position, last_update_wins, pause_edge, listen 127.0.0.1:9187', () => {
    const c = resolveConfig({ nodes, tables: ['public.t', 'sales.*'] });
    expect(c.nodes.map((n) => n.rank)).toEqual([0, 1]);
    expect(c.tables).toEqual([
      { schema: 'public', table: 't', conflict: 'last_update_wins', targets: {} },
      { schema: 'sales', table: '*', conflict: 'last_update_wins', targets: {} },
    ]);
    expect(c.deadLetter).toBe('pause_edge');
    expect(c.http.listen).toEqual({ host: '127.0.0.1', port: 9187 });
    expect(c.conflictLog).toEqual({ retentionHours: 720, maxRows: 1_000_000, pruneIntervalMs: 10_000 });
  });

  it('keeps conflict records forever and without limit when both rules are 0', () => {
    const c = resolveConfig({ nodes, tables: ['public.t'], conflictLog: { retentionHours: 0, maxRows: 0 } });
    expect(c.conflictLog).toEqual({ retentionHours: 0, maxRows: 0, pruneIntervalMs: 10_000 });
  });

  it.each([
    ['off', null],
    [false, null],
    [null, null],
    ['9000', { host: '127.0.0.1', port: 9000 }],
  ])('http.listen %j in the file resolves to %j', (listen, want) => {
    expect(resolveConfig({ nodes, tables: ['public.t'], http: { listen } }).http.listen).toEqual(want);
  });

  it('keeps per-table filters, columns, policy and per-target overrides', () => {
    const c = resolveConfig({
      nodes,
      conflict: 'keep_local',
      tables: [
        {
          name: 'public.t',
          rowFilter: "region = 'eu'",
          columns: ['id', 'region'],
          conflict: 'error',
          targets: { b: { rowFilter: 'true' } },
        },
        'public.u',
      ],
    });
    expect(c.tables[0]).toEqual({
      schema: 'public',
      table: 't',
      rowFilter: "region = 'eu'",
      columns: ['id', 'region'],
      conflict: 'error',
      targets: { b: { rowFilter: 'true' } },
    });
    expect(c.tables[1]?.conflict).toBe('keep_local');
  });

  it.each([
    ['unknown top-level key', { nodes, tables: ['a.b'], bogus: 1 }, 'bogus'],
    [
      'unknown nested key',
      { nodes: [{ ...nodes[0], colour: 'x' }, nodes[1]], tables: ['a.b'] },
      'nodes[0].colour',
    ],
    [
      'bad node name',
      { nodes: [{ name: 'A-1', conninfo: 'x' }, nodes[1]], tables: ['a.b'] },
      'nodes[0].name',
    ],
    [
      'duplicate node name',
      { nodes: [nodes[0], { ...nodes[1], name: 'a' }], tables: ['a.b'] },
      'nodes[1].name',
    ],
    [
      'duplicate rank',
      {
        nodes: [
          { ...nodes[0], rank: 1 },
          { ...nodes[1], rank: 1 },
        ],
        tables: ['a.b'],
      },
      'nodes[1].rank',
    ],
    ['one node only', { nodes: [nodes[0]], tables: ['a.b'] }, 'nodes'],
    ['bad table name', { nodes, tables: ['nodot'] }, 'tables[0]'],
    ['bad policy', { nodes, tables: [{ name: 'a.b', conflict: 'newest' }] }, 'tables[0].conflict'],
    ['unknown target node', { nodes, tables: [{ name: 'a.b', targets: { z: {} } }] }, 'tables[0].targets.z'],
    ['metadata schema', { nodes, tables: ['pgfleet.*'] }, 'tables[0]'],
    ['bad listen', { nodes, tables: ['a.b'], http: { listen: 'nope' } }, 'http.listen'],
    [
      'negative retention',
      { nodes, tables: ['a.b'], conflictLog: { retentionHours: -1 } },
      'conflictLog.retentionHours',
    ],
    ['fractional row cap', { nodes, tables: ['a.b'], conflictLog: { maxRows: 1.5 } }, 'conflictLog.maxRows'],
    [
      'prune interval too short',
      { nodes, tables: ['a.b'], conflictLog: { pruneIntervalMs: 5 } },
      'conflictLog.pruneIntervalMs',
    ],
  ])('rejects %s naming the key path', (_n, input, key) => {
    const e = errorOf(() => resolveConfig(input));
    expect(e.code).toBe('CONFIG_INVALID');
    expect(e.details.key).toBe(key);
    expect(e.message).toContain(key);
  });

  it('never echoes a conninfo password in an error', () => {
    const e = errorOf(() =>
      resolveConfig({
        nodes: [{ name: 'a', conninfo: 'password=s3cret', rank: -1 }, nodes[1]],
        tables: ['a.b'],
      }),
    );
    expect(JSON.stringify({ m: e.message, d: e.details })).not.toContain('s3cret');
  });

  it.each([
    ['public.t', { schema: 'public', table: 't' }],
    ['"My Schema"."a.b"', { schema: 'My Schema', table: 'a.b' }],
    ['"q""x".t', { schema: 'q"x', table: 't' }],
    ['s.*', { schema: 's', table: '*' }],
    ['a.b.c', null],
    ['.t', null],
  ])('parses table name %s', (text, want) => {
    expect(parseTableName(text)).toEqual(want);
  });
});

describe('primary + standby nodes (servers)', () => {
  const servers = [
    {
      name: 'a1',
      conninfo: 'host=10.0.0.1 port=5432 dbname=app user=repl',
      keeperUrl: 'http://10.0.0.1:8008',
    },
    { name: 'a2', conninfo: 'host=10.0.0.2 port=5433 dbname=app user=repl', slot: 'standby_a2' },
  ];

  it('derives the node conninfo: every server, read-write only; slots default to the server name', () => {
    const c = resolveConfig({ nodes: [{ name: 'a', servers }, nodes[1]], tables: ['public.t'] });
    expect(c.nodes[0]?.conninfo).toBe(
      'host=10.0.0.1,10.0.0.2 port=5432,5433 dbname=app user=repl target_session_attrs=read-write',
    );
    expect(c.nodes[0]?.servers).toEqual([
      { name: 'a1', conninfo: servers[0]?.conninfo, slot: 'a1', keeperUrl: 'http://10.0.0.1:8008' },
      { name: 'a2', conninfo: servers[1]?.conninfo, slot: 'standby_a2', keeperUrl: null },
    ]);
    expect(c.nodes[1]?.servers).toEqual([]);
    expect(c.ha).toEqual({ retryMs: 250, checkIntervalMs: 500, resyncMarginMs: 1000 });
  });

  it('keeps a conninfo given next to the servers', () => {
    const c = resolveConfig({
      nodes: [{ name: 'a', conninfo: 'host=vip', servers }, nodes[1]],
      tables: ['public.t'],
    });
    expect(c.nodes[0]?.conninfo).toBe('host=vip');
  });

  it.each([
    ['no conninfo and no servers', [{ name: 'a' }, nodes[1]], 'nodes[0].conninfo'],
    ['one server', [{ name: 'a', servers: [servers[0]] }, nodes[1]], 'nodes[0].servers'],
    [
      'a server twice',
      [{ name: 'a', servers: [servers[0], servers[0]] }, nodes[1]],
      'nodes[0].servers[1].name',
    ],
    [
      'two servers on one slot',
      [{ name: 'a', servers: [servers[0], { ...servers[1], slot: 'a1' }] }, nodes[1]],
      'nodes[0].servers[1].slot',
    ],
    [
      'a bad server name',
      [{ name: 'a', servers: [servers[0], { ...servers[1], name: 'A-2' }] }, nodes[1]],
      'nodes[0].servers[1].name',
    ],
    [
      'a keeper URL that is not http',
      [{ name: 'a', servers: [servers[0], { ...servers[1], keeperUrl: 'ftp://x' }] }, nodes[1]],
      'nodes[0].servers[1].keeperUrl',
    ],
    [
      'a bad conninfo',
      [{ name: 'a', servers: [servers[0], { ...servers[1], conninfo: 'colour=red' }] }, nodes[1]],
      'nodes[0].servers[1].conninfo',
    ],
    [
      'servers that differ beyond host and port, without a conninfo',
      [
        {
          name: 'a',
          servers: [servers[0], { ...servers[1], conninfo: 'host=h2 dbname=other password=s3cret' }],
        },
        nodes[1],
      ],
      'nodes[0].conninfo',
    ],
  ])('rejects %s, naming the key and no password', (_w, n, key) => {
    const e = errorOf(() => resolveConfig({ nodes: n, tables: ['public.t'] }));
    expect(e.details.key).toBe(key);
    expect(e.message).toContain(key);
    expect(e.message).not.toContain('s3cret');
  });

  it("takes a node's servers from PGFLEET_MM_NODE_<NAME>_SERVERS", () => {
    const c = loadConfig({
      env: {
        PGFLEET_MM_NODES: '[{ name: a, conninfo: "host=h1" }, { name: b, conninfo: "host=h2" }]',
        PGFLEET_MM_TABLES: '[public.t]',
        PGFLEET_MM_NODE_A_SERVERS: JSON.stringify(servers),
      },
    });
    expect(c.nodes[0]?.servers.map((s) => s.name)).toEqual(['a1', 'a2']);
  });
});

describe('loadConfig', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mmcfg-'));
  const file = join(dir, 'mm.yaml');
  writeFileSync(
    file,
    'nodes:\n  - { name: a, conninfo: "host=h1" }\n  - { name: b, conninfo: "host=h2" }\ntables: [public.t]\nhttp: { listen: "9000" }\n',
  );

  it('reads YAML, then env overrides, then flags', () => {
    const env = {
      PGFLEET_MM_CONFIG: file,
      PGFLEET_MM_HTTP_LISTEN: '0.0.0.0:9100',
      PGFLEET_MM_NODE_B_CONNINFO: 'host=h3',
      PGFLEET_MM_CONFLICT: 'keep_local',
    };
    const c = loadConfig({ env, flags: { conflict: 'apply_remote' } });
    expect(c.http.listen).toEqual({ host: '0.0.0.0', port: 9100 });
    expect(c.nodes[1]?.conninfo).toBe('host=h3');
    expect(c.conflict).toBe('apply_remote');
    expect(c.tables[0]?.conflict).toBe('apply_remote');
  });

  it('names the file when it is missing or not YAML', () => {
    expect(errorOf(() => loadConfig({ file: join(dir, 'nope.yaml') })).message).toContain('nope.yaml');
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'nodes: [');
    expect(errorOf(() => loadConfig({ file: bad })).message).toContain('not valid YAML');
  });

  it('takes every key from PGFLEET_MM_* variables, without a file', () => {
    const env = {
      PGFLEET_MM_NODES: '[{ name: a, conninfo: "host=h1" }, { name: b, conninfo: "host=h2" }]',
      PGFLEET_MM_TABLES: '["public.t", { name: public.u, conflict: keep_local }]',
      PGFLEET_MM_CONFLICT: 'first_update_wins',
      PGFLEET_MM_DEAD_LETTER: 'discard',
      PGFLEET_MM_CONFLICT_LOG_RETENTION_HOURS: '48',
      PGFLEET_MM_CONFLICT_LOG_MAX_ROWS: '5000',
      PGFLEET_MM_CONFLICT_LOG_PRUNE_INTERVAL_MS: '2000',
      PGFLEET_MM_HTTP_LISTEN: 'off',
      PGFLEET_MM_APPLY_MAX_IN_FLIGHT_TRANSACTIONS: '50',
      PGFLEET_MM_APPLY_BATCH_ROWS: '20',
      PGFLEET_MM_APPLY_SYNCHRONOUS_COMMIT: 'on',
      PGFLEET_MM_APPLY_STREAMING: 'on',
      PGFLEET_MM_APPLY_SPOOL_DIRECTORY: '/var/spool/pgfleet',
      PGFLEET_MM_RECONNECT_BASE_DELAY_MS: '10',
      PGFLEET_MM_RECONNECT_MAX_DELAY_MS: '20',
      PGFLEET_MM_STATUS_INTERVAL_MS: '500',
      PGFLEET_MM_HA_RETRY_MS: '150',
      PGFLEET_MM_HA_CHECK_INTERVAL_MS: '300',
      PGFLEET_MM_HA_RESYNC_MARGIN_MS: '2000',
      PGFLEET_MM_LOG_LEVEL: 'debug',
      PGFLEET_MM_LOG_FORMAT: 'json',
      PGFLEET_MM_NODE_A_RANK: '7',
    };
    // Every documented key has a variable in this test.
    for (const k of CONFIG_KEYS) expect(Object.keys(env)).toContain(envName(k.path));
    const c = loadConfig({ env });
    expect(c.nodes.map((n) => [n.name, n.rank])).toEqual([
      ['a', 7],
      ['b', 1],
    ]);
    expect(c.tables.map((t) => [t.table, t.conflict])).toEqual([
      ['t', 'first_update_wins'],
      ['u', 'keep_local'],
    ]);
    expect(c.deadLetter).toBe('discard');
    expect(c.conflictLog).toEqual({ retentionHours: 48, maxRows: 5000, pruneIntervalMs: 2000 });
    expect(c.http.listen).toBeNull();
    expect(c.apply).toEqual({
      maxInFlightTransactions: 50,
      batchRows: 20,
      synchronousCommit: 'on',
      streaming: true,
      spoolDirectory: '/var/spool/pgfleet',
    });
    expect(c.reconnect).toEqual({ baseDelayMs: 10, maxDelayMs: 20 });
    expect(c.statusIntervalMs).toBe(500);
    expect(c.ha).toEqual({ retryMs: 150, checkIntervalMs: 300, resyncMarginMs: 2000 });
    expect(c.log).toEqual({ level: 'debug', format: 'json' });
  });

  it('lets flags win over env, with --listen as short for --http-listen', () => {
    const env = { PGFLEET_MM_CONFIG: file, PGFLEET_MM_APPLY_BATCH_ROWS: '20' };
    const c = loadConfig({ env, flags: { 'apply-batch-rows': '30', listen: '9300', 'log.level': 'warn' } });
    expect(c.apply.batchRows).toBe(30);
    expect(c.http.listen).toEqual({ host: '127.0.0.1', port: 9300 });
    expect(c.log.level).toBe('warn');
  });

  it('names what is wrong: an unknown variable, a node that does not exist, a bad value, no config', () => {
    expect(
      errorOf(() => loadConfig({ env: { PGFLEET_MM_CONFIG: file, PGFLEET_MM_CONFLCT: 'x' } })).message,
    ).toContain('PGFLEET_MM_CONFLCT');
    expect(
      errorOf(() =>
        loadConfig({
          env: { PGFLEET_MM_CONFIG: file, PGFLEET_MM_NODE_Z_CONNINFO: 'host=x password=s3cret' },
        }),
      ).message,
    ).toMatch(/PGFLEET_MM_NODE_Z_CONNINFO names no node/);
    expect(
      errorOf(() => loadConfig({ file, env: { PGFLEET_MM_APPLY_BATCH_ROWS: 'lots' } })).message,
    ).toContain('apply.batchRows');
    expect(errorOf(() => loadConfig({ env: {} })).message).toContain('PGFLEET_MM_NODES');
    expect(errorOf(() => loadConfig({ file, flags: { colour: 'red' } })).message).toBe(
      'unknown option --colour',
    );
  });
});
