import { PgfleetError } from '@pgfleet/connection';

/** Stable codes of the primary + standby (high availability) handling of mesh nodes. */
export type HaErrorCode =
  /** Another replicator drives this edge now (advisory lock on the target); details.holder names it. */
  | 'EDGE_CLAIMED'
  /** No server of a node accepts writes right now (a failover is under way, or every server is down). */
  | 'NO_PRIMARY'
  /** A source node failed over and its slot for this edge is not ready on the new primary yet. */
  | 'NODE_FAILING_OVER'
  /** The re-sync of a failed-over node's window to a peer failed; it is retried. */
  | 'RESYNC_FAILED';

/** Raised by the HA layer; `details` names the edge, node, servers and what to do. */
export class HaError extends PgfleetError {
  declare readonly code: HaErrorCode;
  constructor(
    code: HaErrorCode,
    message: string,
    details: Record<string, unknown> = {},
    options?: ErrorOptions,
  ) {
    super(code, message, details, options);
  }
}
