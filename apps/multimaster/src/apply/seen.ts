import { nodeOfOrigin } from '../naming.js';
import { formatPgTimestamp } from '../pg-time.js';
import { TIMESTAMP_INFINITY } from './wire-arrays.js';

/** A replication origin of the target, by id: the mesh node its rows came from, if any. */
export interface OriginInfo {
  /** Mesh node whose changes arrive through this origin (its edge's or its replay origin); null: not ours. */
  node: string | null;
  name: string;
}

/**
 * What the source of an edge had seen when it wrote a change, so that the apply can tell a
 * change that raced with the local row from one made on top of it (README "Conflicts").
 *
 * The stream of an edge carries the source's transactions in its commit order, including
 * those it applied from other nodes (they come with an Origin message and are not applied
 * here: echoes). The Begin message of an echo carries the commit time of the original
 * transaction (decode.c takes the origin's timestamp from the commit record). So at every
 * point of the stream, the newest echo commit time per origin node is a time up to which
 * the source had applied that node's transactions: a local row version written by that
 * node (directly, or applied here from it) no later than that was seen by the source.
 *
 * Commit times of one node follow its commit order up to the few microseconds between
 * taking the timestamp and inserting the commit record, so two transactions of one node
 * that commit in that window can be taken for seen one too early.
 */
export class SeenTracker {
  private readonly seen = new Map<string, bigint>();
  /** Bumped whenever a node's time moves: transactions with equal versions share a vector. */
  version = 0;
  /** toJson's last document, and each node's time as text (one node moves at a time). */
  private json: { version: number; text: string } | null = null;
  private readonly texts = new Map<string, { us: bigint; text: string }>();

  /**
   * @param floor µs since 2000, the target's floor (pgfleet.nodes; a node joined by add-node
   *   has its copy source's): versions older than that
   *   existed, the same, on every node before replication started (init's premise).
   * @param nodes every node of the mesh.
   * @param persisted what the last applied transaction recorded (pgfleet.edge_seen), µs.
   */
  constructor(
    readonly floor: bigint,
    private readonly nodes: ReadonlySet<string>,
    persisted: ReadonlyMap<string, bigint>,
  ) {
    for (const n of nodes) this.seen.set(n, persisted.get(n) ?? floor);
  }

  /** An echo: the source applied a transaction of `originName` committed at `commitTs`. */
  echo(originName: string, commitTs: bigint): void {
    const node = nodeOfOrigin(originName);
    if (node === null || !this.nodes.has(node)) return;
    const cur = this.seen.get(node) ?? this.floor;
    if (commitTs > cur) {
      this.seen.set(node, commitTs);
      this.version++;
    }
  }

  get(node: string): bigint | null {
    return this.seen.get(node) ?? null;
  }

  /**
   * The seen time per origin id from 0 (the target's own writes) to the highest id: +infinity
   * for the source's own origins (it saw its own rows), null for origins of no mesh node.
   */
  vector(origins: ReadonlyMap<number, OriginInfo>, target: string, source: string): Array<bigint | null> {
    let width = 1;
    for (const id of origins.keys()) if (id + 1 > width) width = id + 1;
    const out: Array<bigint | null> = new Array(width).fill(null);
    out[0] = this.seen.get(target) ?? null;
    for (const [id, o] of origins) {
      if (id === 0 || o.node === null) continue;
      out[id] = o.node === source ? TIMESTAMP_INFINITY : (this.seen.get(o.node) ?? null);
    }
    return out;
  }

  /** The pgfleet.edge_seen document: node → timestamptz text, nodes in name order. */
  toJson(): string {
    if (this.json?.version === this.version) return this.json.text;
    const doc: Record<string, string> = {};
    for (const n of [...this.seen.keys()].sort()) {
      const us = this.seen.get(n) as bigint;
      let t = this.texts.get(n);
      if (t?.us !== us) {
        t = { us, text: formatPgTimestamp(us) };
        this.texts.set(n, t);
      }
      doc[n] = t.text;
    }
    this.json = { version: this.version, text: JSON.stringify(doc) };
    return this.json.text;
  }
}

/** Whether a version (commit time `ts` µs or null, origin id `id`) was seen, as the SQL decides it (seenCondition). */
export function versionSeen(
  ts: bigint | null,
  id: number,
  floor: bigint,
  vector: ReadonlyArray<bigint | null>,
): boolean {
  if (ts === null || ts <= floor) return true;
  const s = vector[id];
  return s !== undefined && s !== null && ts <= s;
}
