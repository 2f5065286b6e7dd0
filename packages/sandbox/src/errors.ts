/**
 * Errors of the sandbox. The sandbox sits below every package (their tests use it), so it
 * cannot import @pgfleet/connection without a dependency cycle; its errors keep the same
 * shape as PgfleetError: a stable `code` and structured `details`.
 */
export class SandboxError extends Error {
  readonly code: string;
  readonly details: Record<string, unknown>;
  constructor(code: string, message: string, details: Record<string, unknown> = {}, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.details = details;
  }
}

/** No usable PostgreSQL binaries were found; the message lists where we looked. */
export class PostgresNotFoundError extends SandboxError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super('PG_NOT_FOUND', message, details);
  }
}

/** A sandbox node failed to initialise, start, stop or become ready; `details.logTail` has the server log tail. */
export class SandboxNodeError extends SandboxError {
  constructor(message: string, details: Record<string, unknown> = {}, options?: ErrorOptions) {
    super('SANDBOX_NODE', message, details, options);
  }
}

/** No etcd server binary was found; the message says where we looked and how to install one. */
export class EtcdNotFoundError extends SandboxError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super('ETCD_NOT_FOUND', message, details);
  }
}

/** An etcd member failed to start, stop or become healthy; `details.logTail` has its log tail. */
export class SandboxEtcdError extends SandboxError {
  constructor(message: string, details: Record<string, unknown> = {}, options?: ErrorOptions) {
    super('SANDBOX_ETCD', message, details, options);
  }
}
