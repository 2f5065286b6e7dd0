import { PgfleetError } from '@pgfleet/connection';

/** Stable codes of the errors the DCS layer throws on purpose. */
export const DcsErrorCode = {
  /**
   * No etcd endpoint gave an answer within the call's deadline: refused, reset, timed out, or
   * etcd itself could not serve the request (no leader, no quorum, request timed out inside
   * etcd). The outcome of a write is then unknown: it may still be applied later.
   */
  DCS_UNAVAILABLE: 'DCS_UNAVAILABLE',
  /** etcd answered with an error that retrying will not fix (auth, permission, bad request, quota). */
  DCS_REJECTED: 'DCS_REJECTED',
  /** etcd's answer could not be understood (not JSON, missing fields, not a v3 gateway). */
  DCS_BAD_RESPONSE: 'DCS_BAD_RESPONSE',
  /** The caller's AbortSignal fired before the call finished. */
  DCS_ABORTED: 'DCS_ABORTED',
} as const;

export type DcsErrorCode = (typeof DcsErrorCode)[keyof typeof DcsErrorCode];

/** An etcd call failed; `code` says how (see DcsErrorCode). Losing a leader race is not an error. */
export class DcsError extends PgfleetError {
  constructor(
    code: DcsErrorCode,
    message: string,
    details: Record<string, unknown> = {},
    options?: ErrorOptions,
  ) {
    super(code, message, details, options);
  }
}

/** True when `err` means "etcd could not be reached in time" (the failsafe trigger). */
export function isDcsUnavailable(err: unknown): boolean {
  return err instanceof DcsError && err.code === DcsErrorCode.DCS_UNAVAILABLE;
}
