export { type DownCause, type DownReason, downReasonFromError } from './down-reason.js';
export { FenceError, PromoteError, RoleError, RoleErrorCode } from './errors.js';
export {
  type FenceOptions,
  type FenceResult,
  fence,
  isFenced,
  type UnfenceOptions,
  unfence,
} from './fence.js';
export { type PromoteOptions, type PromoteResult, promote } from './promote.js';
export { readConfiguredSetting } from './reload.js';
export { pauseReplay, type ReplayStatus, replayStatus, resumeReplay } from './replay.js';
export {
  replicationStatus,
  type StandbyStream,
  type SyncState,
  type WalReceiver,
  walReceiverStatus,
} from './replication-status.js';
export { type DetectRoleOptions, detectRole, detectRoleOn, type NodeRole, type RoleInfo } from './role.js';
export {
  classifyProcessTitle,
  killServer,
  postmasterPid,
  processState,
  type ServerProcess,
  type ServerProcesses,
  type ServerProcessKind,
  serverProcesses,
  terminateClientBackends,
} from './server-processes.js';
export { readSyncStandbyNames, type SetSyncStandbyNamesOptions, setSyncStandbyNames } from './sync-config.js';
export {
  commitsNeedStandby,
  formatSyncStandbyNames,
  NO_SYNC_STANDBYS,
  parseSyncStandbyNames,
  type StandbyIsSyncOptions,
  type SyncMethod,
  SyncStandbyNamesSyntaxError,
  type SyncStandbySpec,
  standbyIsSync,
  syncPriority,
} from './sync-standby-names.js';
export { currentTimeline } from './timeline.js';
