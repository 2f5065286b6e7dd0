import { setMaxListeners } from 'node:events';
import type { Logger } from 'pino';
import type { ResolvedConfig } from './config.js';
import { EdgeRunner, type EdgeStatus, type EdgeTestHooks } from './edge.js';
import { createMetrics, type EdgeMetrics } from './metrics.js';
import { edgesFor } from './naming.js';

export interface ReplicatorOptions {
  logger: Logger;
  /** Aborting it stops every edge (same as handle.stop()). */
  signal?: AbortSignal;
  /** Only drive these edges (ids like `a_b`); all edges by default. */
  edges?: string[];
  /** Fault-injection seams for end-to-end tests only. */
  testHooks?: EdgeTestHooks;
}

export interface ReplicatorStatus {
  edges: EdgeStatus[];
}

export interface ReplicatorHandle {
  /** Stops streaming, waits for pipelined commits, reports final progress, closes connections. */
  stop(): Promise<void>;
  status(): ReplicatorStatus;
  metrics: EdgeMetrics;
  /** Settles when every edge loop has ended (after stop or abort). */
  done: Promise<void>;
}

/**
 * Starts one stream + apply loop per edge of the mesh, in this process. Returns at once;
 * edges connect, retry and pause on their own and report through status().
 */
export function startReplicator(config: ResolvedConfig, opts: ReplicatorOptions): ReplicatorHandle {
  const controller = new AbortController();
  // Every edge listens on this signal (its loop, its sleeps, its connects): N×(N−1) edges
  // exceed Node's default of 10 listeners without any leak.
  setMaxListeners(0, controller.signal);
  if (opts.signal) {
    if (opts.signal.aborted) controller.abort();
    else opts.signal.addEventListener('abort', () => controller.abort(), { once: true });
  }
  const metrics = createMetrics();
  const logger = opts.logger.child({ component: 'replicator' });
  const edges = edgesFor(config.nodes).filter((e) => !opts.edges || opts.edges.includes(e.id));
  const runners = edges.map(
    (edge) =>
      new EdgeRunner({
        edge,
        config,
        logger: opts.logger,
        metrics,
        signal: controller.signal,
        ...(opts.testHooks ? { testHooks: opts.testHooks } : {}),
      }),
  );
  logger.info({ edges: edges.map((e) => e.id) }, 'replicator starting');
  const done = Promise.all(
    runners.map((r) =>
      r.run().catch((err: unknown) => {
        logger.error({ err }, 'edge loop crashed');
      }),
    ),
  ).then(() => {
    logger.info('replicator stopped');
  });
  return {
    metrics,
    done,
    status: () => ({ edges: runners.map((r) => r.status()) }),
    async stop() {
      controller.abort();
      await done;
    },
  };
}
