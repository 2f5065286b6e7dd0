import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { KeeperStatus } from './state.js';
import { parseSize } from './units.js';

/**
 * The keeper's HTTP API on node:http. Health endpoints follow Patroni's (docs/rest_api.rst),
 * for GET, HEAD and OPTIONS alike, so HAProxy configs written for Patroni work unchanged,
 * including HAProxy's plain `option httpchk`, which sends `OPTIONS /`:
 *
 * | endpoint                                   | 200 when                                        |
 * |--------------------------------------------|-------------------------------------------------|
 * | / /primary /master /read-write /leader     | this keeper holds the write lease (writable)    |
 * | /replica[?lag=][&replication_state=]       | a standby streaming from its primary            |
 * | /sync /synchronous                         | a streaming standby the primary counts as sync  |
 * | /async /asynchronous [?lag=]               | a streaming standby that is not synchronous     |
 * | /read-only /readiness                      | writable primary or streaming standby           |
 * | /read-only-sync                            | writable primary or synchronous standby         |
 * | /quorum                                    | a streaming standby counted as a quorum voter   |
 * | /read-only-quorum                          | writable primary or quorum standby              |
 * | /health                                    | PostgreSQL answers (any role)                   |
 * | /liveness                                  | the keeper loop ran recently                    |
 * | /status                                    | always: JSON status                             |
 * | /cluster /history                          | on etcd: every member, the timeline switches    |
 * | /metrics                                   | always: Prometheus text                         |
 *
 * otherwise 503 (404 for unknown paths). GET health responses carry the status JSON.
 * POST endpoints (`/switchover`, `/pause`, `/resume`, `/peer/notify`, `/failsafe`, `/witness/*`) need
 * `Authorization: Bearer <http.token>`; without a configured token they are refused (403).
 */

export interface PostResult {
  status: number;
  body: unknown;
}

export interface HttpApi {
  status(): KeeperStatus;
  /** True when the keeper loop ran recently enough. */
  alive(): boolean;
  metrics(): Promise<{ contentType: string; body: string }>;
  token?: string;
  /** Read-only JSON documents beyond /status (on etcd: /cluster, /history). */
  get?: Record<string, () => Promise<PostResult>>;
  post: Record<string, (body: unknown) => Promise<PostResult>>;
}

export interface HttpServerHandle {
  url: string;
  port: number;
  close(): Promise<void>;
}

const MAX_BODY = 64 * 1024;

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body, (_k, v) => (typeof v === 'bigint' ? v.toString() : v));
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  res.end(text);
}

function tokenMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer\s+(.+)$/i.exec(header ?? '');
  if (!m) return false;
  const a = Buffer.from(m[1]!.trim());
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new Error('request body too large');
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  return text === '' ? {} : JSON.parse(text);
}

/** Decides the status code of a read-only health endpoint; null for an unknown path. */
export function healthCode(
  path: string,
  s: KeeperStatus,
  alive: boolean,
  query: URLSearchParams,
): number | null {
  const primary = s.role === 'primary' && s.writable;
  const lagParam = query.get('lag');
  const maxLag = lagParam === null ? undefined : parseSize(lagParam);
  if (lagParam !== null && maxLag === undefined) return 400;
  const wantState = query.get('replication_state');
  const streaming = s.role === 'standby' && s.streaming;
  const replica =
    streaming &&
    (maxLag === undefined || (s.lagBytes !== null && s.lagBytes <= maxLag)) &&
    (wantState === null || wantState === 'streaming');
  const sync = replica && s.sync.observation === 'sync';
  const async = replica && s.sync.observation !== 'sync';
  switch (path) {
    case '/':
    case '/primary':
    case '/master':
    case '/read-write':
    case '/leader':
      return primary ? 200 : 503;
    case '/replica':
      return replica ? 200 : 503;
    case '/sync':
    case '/synchronous':
      return sync ? 200 : 503;
    case '/async':
    case '/asynchronous':
      return async ? 200 : 503;
    case '/read-only':
    case '/readiness':
      return primary || replica ? 200 : 503;
    case '/read-only-sync':
      return primary || sync ? 200 : 503;
    // Quorum commit (Patroni 4): a standby the primary's promise counts as a voter.
    case '/quorum':
      return sync ? 200 : 503;
    case '/read-only-quorum':
      return primary || sync ? 200 : 503;
    case '/health':
      return s.role === 'primary' || s.role === 'standby' || s.role === 'witness' ? 200 : 503;
    case '/liveness':
      return alive ? 200 : 503;
    default:
      return null;
  }
}

export function startHttpServer(
  api: HttpApi,
  opts: { host: string; port: number; logger: Logger },
): Promise<HttpServerHandle> {
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://keeper');
    const path = url.pathname.replace(/\/+$/, '') || '/';
    if (req.method === 'GET' || req.method === 'HEAD' || req.method === 'OPTIONS') {
      if (path === '/metrics') {
        const m = await api.metrics();
        res.writeHead(200, { 'content-type': m.contentType });
        res.end(m.body);
        return;
      }
      const getter = api.get?.[path];
      if (getter) {
        const r = await getter();
        return sendJson(res, r.status, r.body);
      }
      const status = api.status();
      if (path === '/status') return sendJson(res, 200, status);
      const code = healthCode(path, status, api.alive(), url.searchParams);
      if (code === null) return sendJson(res, 404, { error: `no such endpoint ${path}` });
      if (code === 400)
        return sendJson(res, 400, { error: 'lag must be a size in bytes, e.g. 1048576 or 1MB' });
      // Like Patroni: HEAD and OPTIONS get the code without the document.
      if (req.method !== 'GET') {
        res.writeHead(code, { 'content-length': '0', 'cache-control': 'no-store' });
        res.end();
        return;
      }
      return sendJson(res, code, status);
    }
    if (req.method !== 'POST') return sendJson(res, 405, { error: `method ${req.method} not allowed` });
    const handler = api.post[path];
    if (!handler) return sendJson(res, 404, { error: `no such endpoint ${path}` });
    if (!api.token) return sendJson(res, 403, { error: 'mutating endpoints are disabled: set http.token' });
    if (!tokenMatches(req.headers.authorization, api.token)) {
      res.setHeader('www-authenticate', 'Bearer');
      return sendJson(res, 401, { error: 'missing or wrong bearer token' });
    }
    let body: unknown;
    try {
      body = await readBody(req);
    } catch (err) {
      return sendJson(res, 400, { error: `bad request body: ${(err as Error).message}` });
    }
    const result = await handler(body);
    sendJson(res, result.status, result.body);
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err) => {
      opts.logger.error({ err: (err as Error).message, path: req.url }, 'http handler failed');
      if (!res.headersSent) sendJson(res, 500, { error: 'internal error' });
      else res.end();
    });
  });
  server.keepAliveTimeout = 5000;

  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      const addr = server.address() as AddressInfo;
      const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
      resolve({
        url: `http://${host}:${addr.port}`,
        port: addr.port,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeAllConnections();
          }),
      });
    });
  });
}
