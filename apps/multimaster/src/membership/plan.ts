import type { Lsn } from '@pgfleet/wal';
import type { TableSpec } from '../config.js';
import { edgeTableFilter } from '../init/init.js';
import { edgeSlotName, originName, replayOriginName } from '../naming.js';

/** Row filter and column list of the edges that end at one node. */
type IncomingFilter = ReturnType<typeof edgeTableFilter>;

function sameFilter(a: IncomingFilter, b: IncomingFilter): boolean {
  return (
    a.rowFilter === b.rowFilter && JSON.stringify(a.columns ?? null) === JSON.stringify(b.columns ?? null)
  );
}

function unfiltered(f: IncomingFilter): boolean {
  return f.rowFilter === undefined && f.columns === undefined;
}

/**
 * Why `source` cannot seed `newNode` by a copy, or null when it can. The copy takes the
 * source's rows through the filter of the edge source → new. Rows the source received from
 * a third node passed that node's filter into the source, so the copy holds what the new
 * node would have received only when that filter keeps at least as much as the filter into
 * the new node: no filter at all, or the very same one.
 */
export function copySourceProblem(tables: TableSpec[], source: string, newNode: string): string | null {
  for (const t of tables) {
    const into = edgeTableFilter(t, source);
    if (unfiltered(into) || sameFilter(into, edgeTableFilter(t, newNode))) continue;
    return `table ${t.schema}.${t.table}: edges into ${source} are filtered differently from edges into ${newNode}, so ${source} lacks rows ${newNode} must receive`;
  }
  return null;
}

export interface SourceCandidate {
  node: string;
  reachable: boolean;
}

/**
 * Picks the copy source: the requested node, else the first reachable existing node (config
 * order) whose incoming filters allow a faithful copy. Every rejected node gets its reason.
 */
export function chooseCopySource(
  tables: TableSpec[],
  candidates: SourceCandidate[],
  newNode: string,
  requested?: string,
): { source: string | null; rejected: Array<{ node: string; reason: string }> } {
  const rejected: Array<{ node: string; reason: string }> = [];
  for (const c of candidates) {
    if (requested !== undefined && c.node !== requested) continue;
    if (!c.reachable) {
      rejected.push({ node: c.node, reason: 'unreachable' });
      continue;
    }
    const problem = copySourceProblem(tables, c.node, newNode);
    if (problem) {
      rejected.push({ node: c.node, reason: problem });
      continue;
    }
    return { source: c.node, rejected };
  }
  if (requested !== undefined && !candidates.some((c) => c.node === requested)) {
    rejected.push({ node: requested, reason: 'not an existing node of the mesh' });
  }
  return { source: null, rejected };
}

/** What is known about how far the copy source has taken in another node's changes. */
export interface CatchUpFacts {
  /** Consistent point of the slot other → new, created before the snapshot. */
  slotStart: Lsn;
  /** pg_replication_origin_progress(pgfleet_<other>, true) on the source; null if never advanced. */
  originProgress: Lsn | null;
  /** confirmed_flush_lsn of the slot other → source on the other node; null when unknown. */
  confirmedFlush: Lsn | null;
  /**
   * Transactions made on the other node itself (not echoes) that the slot other → source
   * still holds up to slotStart, from a peek at the inactive slot; null when not checked.
   */
  pendingOwnTransactions: number | null;
}

export type CatchUp = { ok: true; via: 'origin' | 'slot' | 'peek' } | { ok: false; reason: string };

/**
 * Has the source applied every change the other node made before the slot other → new
 * began? Only then does the snapshot plus that slot cover the other node without a gap.
 * Either proof is enough: the source's origin passed the point (it applies in commit
 * order), the other node's slot to the source was confirmed past it (an edge confirms only
 * what the target made durable), or nothing of the other node's own is pending there.
 */
export function sourceCaughtUp(f: CatchUpFacts): CatchUp {
  if (f.originProgress !== null && f.originProgress >= f.slotStart) return { ok: true, via: 'origin' };
  if (f.confirmedFlush !== null && f.confirmedFlush >= f.slotStart) return { ok: true, via: 'slot' };
  if (f.pendingOwnTransactions === 0) return { ok: true, via: 'peek' };
  if (f.pendingOwnTransactions !== null)
    return { ok: false, reason: `${f.pendingOwnTransactions} transaction(s) not yet applied` };
  return { ok: false, reason: 'not yet applied up to the new slot' };
}

/** Replication objects to drop on one node when `removed` leaves the mesh. */
export interface NodeRemoval {
  node: string;
  slots: string[];
  publications: string[];
  origins: string[];
}

/**
 * Objects of every edge touching `removed`: on each other node the edge other → removed
 * (slot and publication) and the origin of removed; on the removed node itself every
 * outgoing edge and the origin of every other node.
 */
export function removalPlan(nodes: string[], removed: string): NodeRemoval[] {
  const others = nodes.filter((n) => n !== removed);
  const out: NodeRemoval[] = others.map((n) => ({
    node: n,
    slots: [edgeSlotName(n, removed)],
    publications: [edgeSlotName(n, removed)],
    origins: [originName(removed), replayOriginName(removed)],
  }));
  out.push({
    node: removed,
    slots: others.map((n) => edgeSlotName(removed, n)),
    publications: others.map((n) => edgeSlotName(removed, n)),
    origins: others.flatMap((n) => [originName(n), replayOriginName(n)]),
  });
  return out;
}
