import type { NodeConfig } from './config.js';

/** One direction of replication between two nodes. */
export interface Edge {
  /** `<src>_<dst>`: stable id used in logs, metrics, status and `skip --edge`. */
  id: string;
  source: string;
  target: string;
  /** Publication and logical slot on the source. */
  slot: string;
  publication: string;
  /** Replication origin on the target. */
  origin: string;
}

/** Slot and publication of the edge source → target (both live on the source). */
export function edgeSlotName(source: string, target: string): string {
  return `pgfleet_${source}_${target}`;
}

/** Replication origin on any target for changes coming from `source`. */
export function originName(source: string): string {
  return `pgfleet_${source}`;
}

/**
 * Replication origin on a target through which `pgfleet-mm dead-letters --replay` writes
 * changes that came from `source`: not the edge's own origin, which the running replicator
 * holds, but any origin keeps replayed rows from being sent on as this node's own changes.
 * Node names never hold ':', so it cannot clash with an edge origin.
 */
export function replayOriginName(source: string): string {
  return `${originName(source)}:replay`;
}

/** Maps an origin name (an edge's or a replay origin) back to its node, or null when it is not one of ours. */
export function nodeOfOrigin(origin: string): string | null {
  if (!origin.startsWith('pgfleet_')) return null;
  const rest = origin.slice('pgfleet_'.length);
  return rest.endsWith(':replay') ? rest.slice(0, -':replay'.length) : rest;
}

export function makeEdge(source: string, target: string): Edge {
  const name = edgeSlotName(source, target);
  return {
    id: `${source}_${target}`,
    source,
    target,
    slot: name,
    publication: name,
    origin: originName(source),
  };
}

/** Every ordered pair of distinct nodes: N × (N − 1) edges, in a stable order. */
export function edgesFor(nodes: ReadonlyArray<Pick<NodeConfig, 'name'>>): Edge[] {
  const out: Edge[] = [];
  for (const s of nodes) for (const t of nodes) if (s.name !== t.name) out.push(makeEdge(s.name, t.name));
  return out;
}

/** Finds an edge by `a_b`, `a->b` or `a:b`. Node names never hold '-' or ':' but may hold '_'. */
export function findEdge(edges: ReadonlyArray<Edge>, text: string): Edge | null {
  const m = /^([a-z0-9_]+)(?:->|:)([a-z0-9_]+)$/.exec(text);
  if (m) return edges.find((e) => e.source === m[1] && e.target === m[2]) ?? null;
  return edges.find((e) => e.id === text) ?? null;
}
