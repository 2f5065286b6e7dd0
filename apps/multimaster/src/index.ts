export { type AckFacts, ackPosition } from './ack.js';
export { ApplyPausedError, ConflictError, SchemaMismatchError } from './apply/errors.js';
export { type CheckOptions, checkMesh, type TableCheck } from './check.js';
export {
  CONFLICT_POLICIES,
  type ConflictPolicy,
  DEAD_LETTER_POLICIES,
  type DeadLetterPolicy,
  type EdgeFilter,
  type HaSettings,
  type LoadConfigOptions,
  loadConfig,
  type NodeConfig,
  type ResolvedConfig,
  redactedConfig,
  resolveConfig,
  type TableSpec,
} from './config.js';
export {
  CONFLICT_KINDS,
  type ConflictDecision,
  type ConflictKind,
  type LocalRowVersion,
  type RemoteChange,
  type Resolution,
  resolveConflict,
} from './conflict.js';
export { type DeadLetterDecision, type DeadLetterFacts, decideDeadLetter } from './dead-letter.js';
export {
  type DeadLetterEntry,
  type ListDeadLettersOptions,
  listDeadLetters,
  type NodeDeadLetters,
  ReplayError,
  type ReplayOptions,
  type ReplayReport,
  replayDeadLetter,
} from './dead-letters/index.js';
export type { EdgeState, EdgeStatus, EdgeTestHooks } from './edge.js';
export { HaError, type HaErrorCode } from './ha/errors.js';
export { nodeHaStatus } from './ha/node-status.js';
export { findPrimary, type PrimaryTarget } from './ha/primary.js';
export type { NodeHaStatus, StandbyStatus } from './ha/readiness.js';
export type { ServerConfig } from './ha/server-config.js';
export { startHttpServer } from './http.js';
export type { Problem } from './init/checks.js';
export { InitError, type InitOptions, type InitReport, initMesh } from './init/init.js';
export {
  type AddNodeOptions,
  type AddNodePhase,
  type AddNodeProgress,
  type AddNodeReport,
  addNode,
  type CopyProgress,
  MembershipError,
  type MembershipErrorCode,
  type NodeRemovalResult,
  type RemoveNodeOptions,
  type RemoveNodeReport,
  removeNode,
  type SequenceOffsetOptions,
  type SequenceOffsetReport,
  sequenceOffsets,
} from './membership/index.js';
export { type Edge, edgeSlotName, edgesFor, originName, replayOriginName } from './naming.js';
export {
  type ReplicatorHandle,
  type ReplicatorOptions,
  type ReplicatorStatus,
  startReplicator,
} from './replicator.js';
export { APPLY_SESSION_SETTINGS, VALUE_TEXT_SETTINGS } from './session-settings.js';
export { type EdgeDbStatus, meshStatus } from './status.js';
