import { setMaxListeners } from 'node:events';
import { accessSync, constants, statSync } from 'node:fs';
import { ConfigError } from '@pgfleet/connection';
import type { Logger } from 'pino';
import type { ResolvedConfig } from './config.js';
import { EdgeRunner, type EdgeStatus, type EdgeTestHooks } from './edge.js';
import { replicatorIdentity } from './ha/claim.js';
import { NodeSupervisor } from './ha/node-supervisor.js';
import type { NodeHaStatus } from './ha/readiness.js';
import { createMetrics, type EdgeMetrics } from './metrics.js';
import { edgesFor } from './naming.js';

export interface ReplicatorOptions {
  logger: Logger;
  /** Aborting it stops every edge (same as handle.stop()). */
  signal?: AbortSignal;
  /** Only drive these edges (ids like `a_b`); all edges by default. */
  edges?: string[];
  /**
   * Only drive the edges into this node (`pgfleet-mm run --node`): one replicator per node,
   * beside its server. All edges by default.
   */
  node?: string;
  /** How this replicator names itself in edge claims; default host, pid and node selection. */
  holder?: string;
  /** Fault-injection seams for end-to-end tests only. */
  testHooks?: EdgeTestHooks;
}

export interface ReplicatorStatus {
  /** Who this replicator is (as edge claims on targets name it). */
  holder: string;
  edges: EdgeStatus[];
  /** Primary + standby nodes its edges touch: primary, failover readiness, standbys. */
  nodes: NodeHaStatus[];
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
  if (opts.node !== undefined && !config.nodes.some((n) => n.name === opts.node))
    throw new ConfigError(`--node: no node named "${opts.node}" in the mesh`, { key: 'node' });
  if (config.apply.streaming) assertSpoolDirectory(config.apply.spoolDirectory);
  const holder = opts.holder ?? replicatorIdentity(opts.node ?? null);
  const edges = edgesFor(config.nodes).filter(
    (e) => (!opts.edges || opts.edges.includes(e.id)) && (opts.node === undefined || e.target === opts.node),
  );
  // Every primary + standby node an edge touches gets a supervisor here; where several
  // replicators run one for the same node, a lock on its primary lets one act at a time.
  const touched = new Set(edges.flatMap((e) => [e.source, e.target]));
  const supervisors = config.nodes
    .filter((n) => n.servers.length > 0 && touched.has(n.name))
    .map(
      (node) => new NodeSupervisor({ node, config, logger: opts.logger, signal: controller.signal, holder }),
    );
  const runners = edges.map(
    (edge) =>
      new EdgeRunner({
        edge,
        config,
        logger: opts.logger,
        metrics,
        signal: controller.signal,
        holder,
        ...(opts.testHooks ? { testHooks: opts.testHooks } : {}),
      }),
  );
  logger.info(
    { edges: edges.map((e) => e.id), holder, haNodes: supervisors.map((s) => s.status().node) },
    'replicator starting',
  );
  const done = Promise.all([
    ...runners.map((r) =>
      r.run().catch((err: unknown) => {
        logger.error({ err }, 'edge loop crashed');
      }),
    ),
    ...supervisors.map((s) =>
      s.run().catch((err: unknown) => {
        logger.error({ err }, 'node supervisor crashed');
      }),
    ),
  ]).then(() => {
    logger.info('replicator stopped');
  });
  return {
    metrics,
    done,
    status: () => ({
      holder,
      edges: runners.map((r) => r.status()),
      nodes: supervisors.map((s) => s.status()),
    }),
    async stop() {
      controller.abort();
      await done;
    },
  };
}

/** Streamed transactions are spooled there: it must be a directory this process can write. */
function assertSpoolDirectory(dir: string): void {
  const hint = 'set apply.spoolDirectory to a writable directory, or apply.streaming to off';
  let isDir: boolean;
  try {
    isDir = statSync(dir).isDirectory();
    if (isDir) accessSync(dir, constants.W_OK | constants.X_OK);
  } catch (err) {
    throw new ConfigError(
      `apply.spoolDirectory: ${dir} is not usable (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); ${hint}`,
      { key: 'apply.spoolDirectory' },
    );
  }
  if (!isDir)
    throw new ConfigError(`apply.spoolDirectory: ${dir} is not a directory; ${hint}`, {
      key: 'apply.spoolDirectory',
    });
}
