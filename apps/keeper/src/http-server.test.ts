import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type HttpApi, type HttpServerHandle, startHttpServer } from './http-server.js';
import type { KeeperStatus } from './state.js';

const TOKEN = 'test-token-123';

function status(over: Partial<KeeperStatus> = {}): KeeperStatus {
  return {
    node: 'a',
    mode: 'node',
    role: 'primary',
    roleSince: '2024-01-01T00:00:00.000Z',
    roleReason: 'pg_is_in_recovery() = false',
    timeline: 1,
    lsn: '0/3000060',
    fenced: false,
    fenceReason: null,
    writable: true,
    lease: 'held for 1s: b answers as a standby',
    paused: false,
    healthy: true,
    streaming: false,
    lagBytes: null,
    replayPaused: false,
    peer: { name: 'b', role: 'standby', timeline: 1, consecutiveFailures: 0, lastProbeLatencyMs: 3 },
    sync: { configured: '', current: '', degraded: false, observation: 'unknown' },
    decision: null,
    lastIterationAt: null,
    lastError: null,
    counters: { promotions: 0, degrades: 0, restores: 0, fences: 0, serverStops: 0 },
    ...over,
  };
}

describe('keeper HTTP API over real HTTP', () => {
  let current = status();
  let alive = true;
  const posted: Array<{ path: string; body: unknown }> = [];
  let server: HttpServerHandle;

  beforeAll(async () => {
    const api: HttpApi = {
      status: () => current,
      alive: () => alive,
      metrics: async () => ({
        contentType: 'text/plain; version=0.0.4',
        body: 'pgfleet_keeper_role{role="primary"} 1\n',
      }),
      token: TOKEN,
      get: {
        '/cluster': async () => ({ status: 200, body: { leader: 'b', members: [] } }),
        '/history': async () => ({ status: 503, body: { error: 'etcd does not answer' } }),
      },
      post: {
        '/pause': async (body) => {
          posted.push({ path: '/pause', body });
          return { status: 200, body: { paused: true } };
        },
      },
    };
    server = await startHttpServer(api, { host: '127.0.0.1', port: 0, logger: pino({ level: 'silent' }) });
  });
  afterAll(() => server.close());

  const code = async (path: string, init?: RequestInit) => (await fetch(`${server.url}${path}`, init)).status;

  it('binds 127.0.0.1 by default in the URL it reports', () => {
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  });

  it.each<[string, Partial<KeeperStatus>, Record<string, number>]>([
    [
      'primary holding its write lease',
      {},
      {
        '/': 200,
        '/primary': 200,
        '/master': 200,
        '/leader': 200,
        '/read-write': 200,
        '/replica': 503,
        '/sync': 503,
        '/async': 503,
        '/read-only': 200,
        '/read-only-sync': 200,
        '/health': 200,
        '/readiness': 200,
      },
    ],
    [
      'primary without its lease (fenced, fencing, lapsed, rival): never a write target',
      { writable: false, lease: 'not held: the local postmaster takes no new connections' },
      { '/': 503, '/primary': 503, '/master': 503, '/read-write': 503, '/read-only': 503, '/health': 200 },
    ],
    [
      'synchronous streaming standby',
      {
        role: 'standby',
        streaming: true,
        writable: false,
        lagBytes: 0,
        sync: { configured: 'ANY 1 (a, b)', current: null, degraded: false, observation: 'sync' },
      },
      {
        '/': 503,
        '/primary': 503,
        '/replica': 200,
        '/replica?replication_state=streaming': 200,
        '/replica?replication_state=catchup': 503,
        '/sync': 200,
        '/synchronous': 200,
        '/async': 503,
        '/read-only-sync': 200,
      },
    ],
    [
      'asynchronous streaming standby',
      {
        role: 'standby',
        streaming: true,
        writable: false,
        lagBytes: 100,
        sync: { configured: '', current: null, degraded: false, observation: 'async' },
      },
      {
        '/sync': 503,
        '/async': 200,
        '/asynchronous?lag=1kB': 200,
        '/async?lag=10': 503,
        '/read-only-sync': 503,
      },
    ],
    [
      'streaming standby',
      { role: 'standby', streaming: true, writable: false, lagBytes: 2048 },
      {
        '/primary': 503,
        '/replica': 200,
        '/replica?lag=4096': 200,
        '/replica?lag=1kB': 503,
        '/replica?lag=1MB': 200,
        '/replica?lag=lots': 400,
        '/readiness': 200,
      },
    ],
    [
      'standby not streaming',
      { role: 'standby', streaming: false, writable: false, lagBytes: 0 },
      { '/replica': 503, '/readiness': 503, '/health': 200 },
    ],
    [
      'server down',
      { role: 'down', writable: false },
      { '/primary': 503, '/replica': 503, '/health': 503, '/liveness': 200 },
    ],
  ])('%s', async (_name, over, expected) => {
    current = status(over);
    for (const [path, want] of Object.entries(expected))
      expect([path, await code(path)]).toEqual([path, want]);
  });

  it.each(['GET', 'HEAD', 'OPTIONS'])(
    '%s / answers like /primary (HAProxy’s plain option httpchk sends OPTIONS /)',
    async (method) => {
      current = status();
      expect(await code('/', { method })).toBe(200);
      current = status({ role: 'standby', streaming: true, writable: false });
      const res = await fetch(`${server.url}/`, { method });
      expect(res.status).toBe(503);
      expect(await code('/replica', { method })).toBe(200);
      if (method !== 'GET') expect(await res.text()).toBe('');
    },
  );

  it('serves /status as JSON and unknown paths as 404', async () => {
    current = status({ role: 'standby', streaming: true });
    const res = await fetch(`${server.url}/status`);
    expect(res.headers.get('content-type')).toMatch(/application\/json/);
    expect(await res.json()).toMatchObject({ node: 'a', role: 'standby' });
    expect(await code('/nope')).toBe(404);
  });

  it('reports liveness from the loop', async () => {
    alive = false;
    expect(await code('/liveness')).toBe(503);
    alive = true;
    expect(await code('/liveness')).toBe(200);
  });

  it('serves Prometheus text at /metrics', async () => {
    const res = await fetch(`${server.url}/metrics`);
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('pgfleet_keeper_role');
  });

  it('requires the bearer token on POST endpoints', async () => {
    expect(await code('/pause', { method: 'POST' })).toBe(401);
    expect(
      await code('/pause', { method: 'POST', headers: { authorization: 'Bearer wrong-token-12' } }),
    ).toBe(401);
    expect(posted).toHaveLength(0);
    const ok = await fetch(`${server.url}/pause`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ why: 'maintenance' }),
    });
    expect(ok.status).toBe(200);
    expect(posted).toEqual([{ path: '/pause', body: { why: 'maintenance' } }]);
    expect(
      await code('/nothing-here', { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } }),
    ).toBe(404);
    expect(await code('/primary', { method: 'DELETE' })).toBe(405);
  });

  it('serves the read-only documents of a cluster on etcd (/cluster, /history) as JSON', async () => {
    const cluster = await fetch(`${server.url}/cluster`);
    expect(cluster.status).toBe(200);
    expect(await cluster.json()).toEqual({ leader: 'b', members: [] });
    const history = await fetch(`${server.url}/history/`);
    expect(history.status).toBe(503);
    expect(await history.json()).toEqual({ error: 'etcd does not answer' });
  });

  it('refuses POST when no token is configured', async () => {
    const open = await startHttpServer(
      {
        status: () => current,
        alive: () => true,
        metrics: async () => ({ contentType: 'text/plain', body: '' }),
        post: { '/pause': async () => ({ status: 200, body: {} }) },
      },
      { host: '127.0.0.1', port: 0, logger: pino({ level: 'silent' }) },
    );
    try {
      expect((await fetch(`${open.url}/pause`, { method: 'POST' })).status).toBe(403);
    } finally {
      await open.close();
    }
  });
});
