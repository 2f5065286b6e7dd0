import type { ConflictPolicy } from './config.js';

/**
 * What the apply found when a remote change met the local table.
 * - insert_exists: INSERT of a key that exists locally.
 * - update_differs: UPDATE of a row whose last local change came from another node.
 * - update_missing: UPDATE of a key that does not exist locally.
 * - delete_differs: DELETE of a row whose last local change came from another node.
 * - delete_missing: DELETE of a key that does not exist locally.
 */
export const CONFLICT_KINDS = [
  'insert_exists',
  'update_differs',
  'update_missing',
  'delete_differs',
  'delete_missing',
] as const;
export type ConflictKind = (typeof CONFLICT_KINDS)[number];

export interface LocalRowVersion {
  /** Commit timestamp of the local row's last change in µs since 2000-01-01, null when unknown (frozen, or written before track_commit_timestamp). */
  commitTs: bigint | null;
  /** Rank of the node that made the local row's last change. */
  originRank: number;
}

export interface RemoteChange {
  /** Source commit timestamp, µs since 2000-01-01. */
  commitTs: bigint;
  sourceRank: number;
}

export type Resolution = 'apply' | 'skip' | 'error';

/** A conflict as logged and counted: where, what, how it was resolved and why. */
export interface RecordedConflict {
  /** schema.table */
  table: string;
  kind: ConflictKind;
  resolution: Resolution;
  reason: string;
}

export interface ConflictDecision {
  resolution: Resolution;
  reason: string;
}

/** Does the remote version beat the local one in "later wins" order? Ties go to the lower rank. */
function remoteIsLater(local: LocalRowVersion, remote: RemoteChange): boolean {
  if (local.commitTs === null) return true;
  if (remote.commitTs !== local.commitTs) return remote.commitTs > local.commitTs;
  return remote.sourceRank < local.originRank;
}

function remoteIsEarlier(local: LocalRowVersion, remote: RemoteChange): boolean {
  if (local.commitTs === null) return false;
  if (remote.commitTs !== local.commitTs) return remote.commitTs < local.commitTs;
  return remote.sourceRank < local.originRank;
}

/**
 * Decides one conflict. Pure and deterministic: every node that meets the same pair of
 * versions decides the same way, so the mesh converges whatever order edges apply in.
 *
 * Deletes win over concurrent updates under every converging policy: without tombstones
 * the node that already deleted the row cannot compare timestamps (update_missing is
 * skipped), so the node that still has it must apply the delete (delete_differs) or the
 * two would diverge.
 */
export function resolveConflict(
  kind: ConflictKind,
  policy: ConflictPolicy,
  local: LocalRowVersion | null,
  remote: RemoteChange,
): ConflictDecision {
  if (policy === 'error') return { resolution: 'error', reason: `policy error: ${kind} stops the edge` };
  switch (kind) {
    case 'update_missing':
      return { resolution: 'skip', reason: 'row is gone locally: a delete wins over a concurrent update' };
    case 'delete_missing':
      return { resolution: 'skip', reason: 'row is already gone locally' };
    case 'delete_differs':
      if (policy === 'keep_local') return { resolution: 'skip', reason: 'keep_local: local row kept' };
      return { resolution: 'apply', reason: 'a delete wins over a concurrent update' };
    case 'insert_exists':
    case 'update_differs': {
      if (policy === 'apply_remote')
        return { resolution: 'apply', reason: 'apply_remote: remote row applied' };
      if (policy === 'keep_local') return { resolution: 'skip', reason: 'keep_local: local row kept' };
      const lv = local ?? { commitTs: null, originRank: Number.MAX_SAFE_INTEGER };
      const tie = lv.commitTs !== null && lv.commitTs === remote.commitTs;
      if (policy === 'last_update_wins') {
        const win = remoteIsLater(lv, remote);
        return {
          resolution: win ? 'apply' : 'skip',
          reason: tie
            ? `equal commit timestamps: rank ${win ? remote.sourceRank : lv.originRank} (lower) wins`
            : lv.commitTs === null
              ? 'local commit timestamp unknown: remote row applied'
              : win
                ? 'remote change is later'
                : 'local change is later',
        };
      }
      const win = remoteIsEarlier(lv, remote);
      return {
        resolution: win ? 'apply' : 'skip',
        reason: tie
          ? `equal commit timestamps: rank ${win ? remote.sourceRank : lv.originRank} (lower) wins`
          : lv.commitTs === null
            ? 'local commit timestamp unknown: local row kept'
            : win
              ? 'remote change is earlier'
              : 'local change is earlier',
      };
    }
  }
}
