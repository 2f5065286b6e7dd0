/** The keeper's DCS layer: what the keeper loop (and the CLI) import from here. */
export type {
  ClusterSnapshot,
  Dcs,
  DcsCallOptions,
  LeaderAttempt,
  LeaderKey,
  LeaderRenewal,
  SessionLease,
} from './dcs.js';
export { DcsError, DcsErrorCode, isDcsUnavailable } from './errors.js';
export { createEtcdDcs, EtcdDcs, type EtcdDcsOptions } from './etcd-dcs.js';
export type { GatewaySecurity } from './etcd-gateway.js';
export {
  type ClusterConfig,
  DEFAULT_CLUSTER_CONFIG,
  type Handover,
  type MemberRecord,
  type MemberRole,
  type MemberState,
  publicConninfo,
} from './records.js';
