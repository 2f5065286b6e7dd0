import { redactConninfo } from '@pgfleet/connection';
import {
  detectRoleOn,
  downReasonFromError,
  type ReplayStatus,
  type RoleInfo,
  readSyncStandbyNames,
  replayStatus,
  replicationStatus,
  type StandbyStream,
  type WalReceiver,
  walReceiverStatus,
} from '@pgfleet/roles';
import { errorText, type LoopContext } from './context.js';
import { withSession } from './session.js';

/**
 * Everything an iteration needs from the local server, in one fresh session under the hard
 * timeout: its role (re-learned every iteration), and what the role's mode needs. A server
 * that cannot be reached is role 'down' with a cause (refused, timeout, ...), never an error.
 */
export interface LocalFacts {
  info: RoleInfo;
  /** Standby: replay and WAL receiver state (undefined if those queries failed). */
  standby?: { replay: ReplayStatus; receiver: WalReceiver | null };
  /** Primary: synchronous_standby_names and pg_stat_replication (undefined if they failed). */
  primary?: { syncNames: string; streams: StandbyStream[] };
  /** Why the mode-specific part is missing. */
  partialError?: string;
}

export async function readLocal(ctx: LoopContext): Promise<LocalFacts> {
  const { config: c } = ctx;
  try {
    return await withSession(
      c.node.conninfo,
      { timeoutMs: c.connectTimeoutMs, node: c.node.name, action: 'local status', signal: ctx.signal },
      async (q) => {
        const info = await detectRoleOn(q);
        try {
          if (info.role === 'standby')
            return { info, standby: { replay: await replayStatus(q), receiver: await walReceiverStatus(q) } };
          return {
            info,
            primary: { syncNames: await readSyncStandbyNames(q), streams: await replicationStatus(q) },
          };
        } catch (err) {
          return { info, partialError: errorText(err) };
        }
      },
    );
  } catch (err) {
    const down = downReasonFromError(err);
    const info: RoleInfo = {
      role: 'down',
      reason: redactConninfo(`${c.node.name}: ${down.reason}`),
      downCause: down.cause,
    };
    if (down.sqlState) info.sqlState = down.sqlState;
    return { info };
  }
}
