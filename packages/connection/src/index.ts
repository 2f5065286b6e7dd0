export { type BackoffPolicy, backoffDelay } from './backoff.js';
export {
  classifyDriverError,
  type DriverErrorClass,
  isConnectionError,
  socketCodeOf,
  sqlStateOf,
} from './classify-error.js';
export {
  type ClientConfigOptions,
  type HostTarget,
  type PgClientConfig,
  resolveTargets,
  singleHostConninfo,
} from './client-config.js';
export {
  type ConnectOptions,
  connect,
  pgClientConfig,
  type RetryOptions,
  withConnection,
} from './connect.js';
export {
  CONNINFO_KEYWORDS,
  type ConnParams,
  formatConninfo,
  formatUri,
  isConninfoUri,
  parseConninfo,
  withConninfo,
} from './conninfo.js';
export { ConfigError, ConninfoError, NodeUnreachableError, PgError, PgfleetError } from './errors.js';
export { type HandshakeProbeResult, probeHandshake } from './handshake-probe.js';
export { type ErrorContext, toPgfleetError } from './map-error.js';
export { pause } from './pause.js';
export {
  findPgpassPassword,
  type PgpassEnv,
  type PgpassIo,
  type PgpassLookup,
  type PgpassOptions,
  passwordFromEnvironment,
  pgpassFilePath,
} from './pgpass.js';
export { type ProbeOptions, type ProbeResult, probe } from './probe.js';
export type { Queryable } from './queryable.js';
export { quoteIdent, quoteLiteral, quoteQualified } from './quote.js';
export { REDACTED, redactConninfo, redactParams } from './redact.js';
export type { TargetSessionAttrs } from './session-attrs.js';
export { isConnectionSqlState, SqlState, type SqlStateCode, type SqlStateName } from './sqlstate.js';
