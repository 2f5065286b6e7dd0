import { PgfleetError } from '@pgfleet/connection';

/** A source column does not exist on the target (DDL is not replicated): the edge pauses. */
export class SchemaMismatchError extends PgfleetError {
  constructor(
    message: string,
    details: { edge: string; table: string; column?: string; constraints?: string[] },
  ) {
    super('SCHEMA_MISMATCH', message, details);
  }
}

/** A transaction could not be applied and the dead-letter policy (or conflict policy `error`) pauses the edge. */
export class ApplyPausedError extends PgfleetError {
  constructor(message: string, details: Record<string, unknown>, options?: ErrorOptions) {
    super('EDGE_PAUSED', message, details, options);
  }
}

/** A conflict under policy `error`. */
export class ConflictError extends PgfleetError {
  constructor(message: string, details: Record<string, unknown>) {
    super('CONFLICT', message, details);
  }
}
