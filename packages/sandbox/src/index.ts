export { type FindPostgresOptions, findPostgres, listInstallations } from './binaries.js';
export {
  EtcdNotFoundError,
  PostgresNotFoundError,
  SandboxError,
  SandboxEtcdError,
  SandboxNodeError,
} from './errors.js';
export { type EtcdBinary, findEtcd } from './etcd-binary.js';
export { EtcdCluster, type EtcdClusterOptions } from './etcd-cluster.js';
export type { EtcdMember } from './etcd-member.js';
export type { EtcdTlsClient, EtcdTlsFiles } from './etcd-tls.js';
export { eventually } from './eventually.js';
export { SandboxNode, type StopMode } from './node.js';
export { freePort, freePortSync } from './ports.js';
export { PartyProxy } from './proxy.js';
export { Sandbox, type SandboxOptions } from './sandbox.js';
export { type SlotNode, slotsConfirmed } from './slots-confirmed.js';
export type {
  ConnectionFacts,
  InstallationSource,
  NodeOptions,
  PgInstallation,
  ProvidedPgServer,
  ServerSettings,
  StandbyOptions,
} from './types.js';
