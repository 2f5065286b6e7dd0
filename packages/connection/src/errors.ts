/**
 * Base of every error pgfleet throws on purpose. `code` is stable and machine-readable;
 * `details` carries the structured facts (never secrets).
 */
export class PgfleetError extends Error {
  readonly code: string;
  readonly details: Record<string, unknown>;

  constructor(code: string, message: string, details: Record<string, unknown> = {}, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.details = details;
  }
}

/** A configuration value is missing or wrong; `details.key` names it. */
export class ConfigError extends PgfleetError {
  constructor(message: string, details: Record<string, unknown> = {}, options?: ErrorOptions) {
    super('CONFIG_INVALID', message, details, options);
  }
}

/** A conninfo string or URI could not be parsed. */
export class ConninfoError extends PgfleetError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super('CONNINFO_INVALID', message, details);
  }
}

/** A node did not answer (refused, timed out, DNS, or the server is starting/stopping). */
export class NodeUnreachableError extends PgfleetError {
  constructor(message: string, details: Record<string, unknown> = {}, options?: ErrorOptions) {
    super('NODE_UNREACHABLE', message, details, options);
  }
}

/** The server answered with an error; `sqlState` is its SQLSTATE. */
export class PgError extends PgfleetError {
  readonly sqlState: string;
  constructor(
    sqlState: string,
    message: string,
    details: Record<string, unknown> = {},
    options?: ErrorOptions,
  ) {
    super('PG_ERROR', message, { ...details, sqlState }, options);
    this.sqlState = sqlState;
  }
}
