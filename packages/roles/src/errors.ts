import { PgfleetError } from '@pgfleet/connection';

/** Stable codes of the errors this package throws on purpose. */
export const RoleErrorCode = {
  /** A value for synchronous_standby_names does not follow the server's grammar. */
  SYNC_NAMES_INVALID: 'SYNC_NAMES_INVALID',
  /** ALTER SYSTEM + reload ran but SHOW did not report the new value in time. */
  SYNC_NAMES_NOT_APPLIED: 'SYNC_NAMES_NOT_APPLIED',
  /** The operation needs a standby (recovery in progress) and the node is a primary. */
  NOT_IN_RECOVERY: 'NOT_IN_RECOVERY',
  /** The operation needs a primary and the node is in recovery. */
  IN_RECOVERY: 'IN_RECOVERY',
  /** The server answered with something this package cannot interpret. */
  UNEXPECTED_RESULT: 'UNEXPECTED_RESULT',
  /** pg_promote() returned false: the standby did not finish promoting within waitSeconds. */
  PROMOTE_TIMEOUT: 'PROMOTE_TIMEOUT',
  /** pg_promote() returned but the node still reports pg_is_in_recovery() = true. */
  PROMOTE_NOT_VERIFIED: 'PROMOTE_NOT_VERIFIED',
  /** pg_promote() itself failed (permissions, server error). */
  PROMOTE_FAILED: 'PROMOTE_FAILED',
  /** default_transaction_read_only did not reach the wanted value after reload in time. */
  FENCE_NOT_APPLIED: 'FENCE_NOT_APPLIED',
  /** A fence/unfence statement failed on the server. */
  FENCE_FAILED: 'FENCE_FAILED',
} as const;

export type RoleErrorCode = (typeof RoleErrorCode)[keyof typeof RoleErrorCode];

/** Role detection, replication status and synchronous_standby_names errors. */
export class RoleError extends PgfleetError {
  constructor(
    code: RoleErrorCode,
    message: string,
    details: Record<string, unknown> = {},
    options?: ErrorOptions,
  ) {
    super(code, message, details, options);
  }
}

/** Promotion failed or could not be verified; the node may still be a standby. */
export class PromoteError extends PgfleetError {
  constructor(
    code: RoleErrorCode,
    message: string,
    details: Record<string, unknown> = {},
    options?: ErrorOptions,
  ) {
    super(code, message, details, options);
  }
}

/** Fencing or unfencing failed or could not be verified; treat the node as NOT fenced. */
export class FenceError extends PgfleetError {
  constructor(
    code: RoleErrorCode,
    message: string,
    details: Record<string, unknown> = {},
    options?: ErrorOptions,
  ) {
    super(code, message, details, options);
  }
}

export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
