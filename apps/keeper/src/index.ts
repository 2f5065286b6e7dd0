export { type Clock, systemClock } from './clock.js';
export {
  CONFIG_KEYS,
  configFromEnv,
  configFromFlags,
  envName,
  type KeeperConfig,
  type LoadConfigOptions,
  loadConfig,
  parseConfig,
} from './config.js';
export { decideFence, type FenceAction, type FenceFacts, type FencePolicy } from './fence-decision.js';
export type { HookEvent } from './hooks.js';
export { type KeeperHandle, type KeeperOptions, startKeeper } from './keeper.js';
export {
  decidePrimary,
  observeStandby,
  type PrimaryAction,
  type PrimaryFacts,
  type PrimaryPolicy,
} from './primary-decision.js';
export { decideServerWatch, type ServerWatchVerdict } from './server-watch-decision.js';
export {
  decideStandby,
  observePrimaryProbe,
  type StandbyAction,
  type StandbyFacts,
  type StandbyPolicy,
} from './standby-decision.js';
export type { KeeperStatus } from './state.js';
export { type KeeperTiming, keeperTiming } from './timing.js';
export { decideVote, recordHeartbeat, type VoteDecision, type WitnessState } from './witness.js';
export { judgeLease, type LeaseEvidence, type LeaseVerdict } from './write-lease.js';
