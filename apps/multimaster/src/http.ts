import { createServer, type Server } from 'node:http';
import type { Logger } from 'pino';
import type { HttpListen } from './config.js';
import type { ReplicatorHandle } from './replicator.js';

/**
 * GET /health (200 while no edge is paused, else 503, with the states), /status (JSON of
 * every edge), /metrics (Prometheus). Read-only; binds 127.0.0.1 unless configured.
 */
export async function startHttpServer(
  rep: ReplicatorHandle,
  listen: HttpListen,
  logger: Logger,
): Promise<Server> {
  const log = logger.child({ component: 'http' });
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const json = (code: number, body: unknown) => {
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(`${JSON.stringify(body, null, 2)}\n`);
    };
    if (req.method !== 'GET') return json(405, { error: 'method not allowed' });
    switch (url.pathname) {
      case '/health': {
        const edges = rep.status().edges;
        const paused = edges.filter((e) => e.state === 'paused');
        return json(paused.length ? 503 : 200, {
          ok: paused.length === 0,
          edges: Object.fromEntries(edges.map((e) => [e.edge, e.state])),
        });
      }
      case '/status':
        return json(200, rep.status());
      case '/metrics':
        rep.metrics.registry
          .metrics()
          .then((text) => {
            res.writeHead(200, { 'content-type': rep.metrics.registry.contentType });
            res.end(text);
          })
          .catch((err: Error) => json(500, { error: err.message }));
        return;
      default:
        return json(404, { error: 'not found', paths: ['/health', '/status', '/metrics'] });
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => resolve());
  });
  log.info({ listen: `${listen.host}:${(server.address() as { port: number }).port}` }, 'http listening');
  return server;
}
