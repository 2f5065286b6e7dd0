import { type Queryable, redactConninfo } from '@pgfleet/connection';
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
import { type LocalSession, LocalSessionBroken } from './local-session.js';
import { withSession } from './session.js';

/**
 * Everything an iteration needs from the local server, on the keeper's long-lived local session
 * under the hard timeout: its role (re-learned every iteration), and what the role's mode needs. A server
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

export async function readLocal(ctx: LoopContext, session: LocalSession): Promise<LocalFacts> {
  const { config: c } = ctx;
  try {
    return await session.run('local status', gather, ctx.signal);
  } catch (err) {
    if (!(err instanceof LocalSessionBroken)) return down(c.node.name, err);
  }
  // The long-lived session broke: ask once more on a fresh connection, which tells a restarted
  // server from a dead one (refused, in crash recovery, shutting down...).
  try {
    return await withSession(
      c.node.conninfo,
      { timeoutMs: c.connectTimeoutMs, node: c.node.name, action: 'local status', signal: ctx.signal },
      gather,
    );
  } catch (err) {
    return down(c.node.name, err);
  }
}

async function gather(q: Queryable): Promise<LocalFacts> {
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
}

function down(node: string, err: unknown): LocalFacts {
  const d = downReasonFromError(err);
  const info: RoleInfo = {
    role: 'down',
    reason: redactConninfo(`${node}: ${d.reason}`),
    downCause: d.cause,
  };
  if (d.sqlState) info.sqlState = d.sqlState;
  return { info };
}
