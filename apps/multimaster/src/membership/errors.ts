import { PgfleetError } from '@pgfleet/connection';

/** Stable codes of membership operations (add-node, remove-node, sequence offsets). */
export type MembershipErrorCode =
  /** The request does not fit the config (unknown node, node not in config, bad stride). */
  | 'MEMBERSHIP_INVALID'
  /** The new node or the mesh fails a precondition (schema, capacity, non-empty tables). */
  | 'ADD_NODE_PRECONDITION'
  /** No existing node can serve as copy source (unreachable, or its incoming filters differ). */
  | 'ADD_NODE_NO_SOURCE'
  /** The copy source did not catch up with another node in time (is `pgfleet-mm run` running?). */
  | 'ADD_NODE_SOURCE_BEHIND'
  /** The join failed part-way; everything it had created was dropped again. */
  | 'ADD_NODE_FAILED'
  /** A sequence cannot be given node-unique values (descending, or out of range). */
  | 'SEQUENCE_OFFSET_INVALID';

/** A membership operation failed; `details` names nodes, tables and what to do. */
export class MembershipError extends PgfleetError {
  declare readonly code: MembershipErrorCode;
  constructor(
    code: MembershipErrorCode,
    message: string,
    details: Record<string, unknown> = {},
    options?: ErrorOptions,
  ) {
    super(code, message, details, options);
  }
}
