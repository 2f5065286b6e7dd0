import type { Logger } from 'pino';
import type { Clock } from './clock.js';
import type { KeeperConfig } from './config.js';
import type { Dcs } from './dcs/index.js';
import type { HookEvent, HookRunner } from './hooks.js';
import type { LocalSession } from './local-session.js';
import type { KeeperMetrics } from './metrics.js';
import type { PrimaryGuard } from './primary-guard.js';
import type { KeeperState } from './state.js';

/** What the mode loops share: config, injected services, and the keeper's memory. */
export interface LoopContext {
  config: KeeperConfig;
  logger: Logger;
  clock: Clock;
  signal: AbortSignal;
  metrics: KeeperMetrics;
  hooks: HookRunner;
  state: KeeperState;
  /**
   * Records a decision; logs it when its kind or key changed since the last one (`key`
   * defaults to the reason; give a stable one when the reason carries a countdown).
   */
  record(kind: string, reason: string, fields?: Record<string, unknown>, key?: string): void;
  /** The write lease and the fence of the local primary (node mode). */
  guard?: PrimaryGuard;
  /** The cluster's etcd (dcs.etcd configured): the arbiter instead of peer + witness. */
  dcs?: Dcs;
  /** The keeper's long-lived session to its own server (node mode). */
  session?: LocalSession;
  /** Runs a hook for `event` with the current role/timeline (queued, not awaited). */
  hook(event: HookEvent, reason: string, extra?: { oldRole?: string }): void;
  /** Start the next iteration now instead of at the next tick. */
  wake(): void;
}

/** Short one-line text of any error, secrets already redacted by the error's producer. */
export function errorText(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
