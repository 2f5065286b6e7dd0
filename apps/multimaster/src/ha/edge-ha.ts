import type { NodeConfig, ResolvedConfig } from '../config.js';
import type { Edge } from '../naming.js';
import { HaError } from './errors.js';
import { candidatesOf, findPrimary, type PrimaryTarget } from './primary.js';

/** True when the node's writes may move between servers (listed servers, or a multi-host conninfo). */
export function followsFailover(node: NodeConfig): boolean {
  return candidatesOf(node).length > 1;
}

/**
 * Physical slots of the node's standbys on its current primary: those of every listed
 * server but the primary itself. Empty for a node without `servers`.
 */
export function standbySlotsOf(node: NodeConfig, primary: PrimaryTarget): string[] {
  return node.servers.filter((s) => s.name !== primary.server).map((s) => s.slot);
}

/**
 * What one edge needs to follow its nodes through failovers: where their primaries are now,
 * whether its source slot is usable, and how long to wait before the next attempt.
 */
export class EdgeHa {
  readonly sourceFollows: boolean;
  readonly targetFollows: boolean;

  constructor(
    private readonly edge: Edge,
    readonly source: NodeConfig,
    readonly target: NodeConfig,
    private readonly config: ResolvedConfig,
  ) {
    this.sourceFollows = followsFailover(source);
    this.targetFollows = followsFailover(target);
  }

  /** The current primaries of both ends (a single-server node is used as configured). */
  async resolve(signal: AbortSignal): Promise<{ source: PrimaryTarget; target: PrimaryTarget }> {
    const o = { timeoutMs: Math.max(1000, this.config.ha.retryMs * 4), signal };
    const [source, target] = await Promise.all([findPrimary(this.source, o), findPrimary(this.target, o)]);
    return { source, target };
  }

  /**
   * Whether the source slot can be streamed from: it exists and is not being re-created
   * after a failover. Null when it can; for a source that never fails over a missing slot
   * is a setup problem (the caller pauses the edge), not a wait.
   */
  sourceSlotWait(slotExists: boolean, resyncState: string | null, server: string | null): HaError | null {
    if (slotExists && resyncState !== 'pending') return null;
    if (!slotExists && !this.sourceFollows) return null;
    const where = server ? `${this.edge.source} (server ${server})` : this.edge.source;
    return new HaError(
      'NODE_FAILING_OVER',
      slotExists
        ? `slot ${this.edge.slot} on ${where} is being re-created after a failover; the edge waits for its re-sync to ${this.edge.target}`
        : `slot ${this.edge.slot} does not exist on ${where}, the new primary after a failover; the edge waits until a replicator re-creates it (or run pgfleet-mm init)`,
      { edge: this.edge.id, node: this.edge.source, server },
    );
  }

  /** Backoff capped by `ha.retryMs` for edges touching a node that fails over. */
  retryDelay(backoff: number): number {
    return this.sourceFollows || this.targetFollows ? Math.min(backoff, this.config.ha.retryMs) : backoff;
  }
}
