import { SqlState, socketCodeOf, sqlStateOf } from '@pgfleet/connection';

/**
 * Why a node counts as down, as a stable token the keeper can switch on. `reason` strings
 * are for humans; these are for code.
 */
export type DownCause =
  | 'refused' // nothing listens on the port (postmaster dead)
  | 'timeout' // no answer in time: black-holed, paused or overloaded
  | 'reset' // the connection dropped while we talked
  | 'unreachable' // host or network unreachable
  | 'host_not_found' // DNS failed
  | 'starting_up' // 57P03 "the database system is starting up"
  | 'shutting_down' // 57P03 "... is shutting down", 57P01 admin shutdown
  | 'crash_recovery' // 57P03 "... is in recovery mode" (crash recovery after a kill), 57P02
  | 'not_consistent' // 57P03 "... not yet accepting connections": standby before consistency
  | 'hot_standby_off' // 57P03 "... not accepting connections": a standby with hot_standby = off
  | 'auth_failed' // 28P01 / 28000: reachable, but our credentials are refused
  | 'too_many_connections' // 53300
  | 'error'; // anything else (the reason carries the message)

export interface DownReason {
  cause: DownCause;
  reason: string;
  sqlState?: string;
  /**
   * The server itself replied (an ErrorResponse with a SQLSTATE: wrong password, too many
   * connections, starting up...). A server that answers is alive, whatever it said: this is
   * evidence of life, never of death.
   */
  answered: boolean;
  /** The server's own words, when it answered (e.g. 'password authentication failed for user "x"'). */
  serverMessage?: string;
}

interface Facts {
  sqlState?: string;
  errno?: string;
  messages: string[];
  /** Message of the node-pg error that carried the server's ErrorResponse. */
  serverMessage?: string;
}

const SOCKET_CAUSES: Record<string, DownCause> = {
  ECONNREFUSED: 'refused',
  ENOENT: 'refused', // unix socket file missing: no server
  ETIMEDOUT: 'timeout',
  ECONNRESET: 'reset',
  ECONNABORTED: 'reset',
  EPIPE: 'reset',
  ERR_SOCKET_CLOSED: 'reset',
  EHOSTUNREACH: 'unreachable',
  EHOSTDOWN: 'unreachable',
  ENETUNREACH: 'unreachable',
  ENETDOWN: 'unreachable',
  ENOTFOUND: 'host_not_found',
  EAI_AGAIN: 'host_not_found',
};

/** Collects SQLSTATE, errno code and messages along `cause` chains, AggregateErrors and details. */
function collect(err: unknown, facts: Facts, depth = 0): void {
  if (depth > 8 || err === null || typeof err !== 'object') {
    if (typeof err === 'string') facts.messages.push(err);
    return;
  }
  const e = err as { message?: unknown; errors?: unknown; cause?: unknown };
  if (typeof e.message === 'string' && e.message !== '') facts.messages.push(e.message);
  const ownState = sqlStateOf(err);
  // node-pg's DatabaseError (a SQLSTATE with a severity): the server's own words.
  if (
    facts.serverMessage === undefined &&
    ownState !== undefined &&
    typeof (err as { severity?: unknown }).severity === 'string' &&
    typeof e.message === 'string'
  )
    facts.serverMessage = e.message;
  facts.sqlState ??= ownState;
  const socketCode = socketCodeOf(err);
  if (!facts.errno && socketCode !== undefined && socketCode in SOCKET_CAUSES) facts.errno = socketCode;
  if (Array.isArray(e.errors)) for (const inner of e.errors) collect(inner, facts, depth + 1);
  if (e.cause !== undefined) collect(e.cause, facts, depth + 1);
}

/** 57P03 covers several states; the server tells them apart only by message (postmaster.c). */
function cannotConnectNowCause(messages: string[]): DownCause {
  const text = messages.join(' | ').toLowerCase();
  if (text.includes('starting up')) return 'starting_up';
  if (text.includes('shutting down')) return 'shutting_down';
  if (text.includes('in recovery mode')) return 'crash_recovery';
  if (text.includes('not yet accepting connections')) return 'not_consistent';
  if (text.includes('not accepting connections')) return 'hot_standby_off';
  return 'starting_up';
}

const CAUSE_TEXT: Record<DownCause, string> = {
  refused: 'connection refused',
  timeout: 'timed out',
  reset: 'connection reset',
  unreachable: 'host unreachable',
  host_not_found: 'host not found',
  starting_up: 'starting up',
  shutting_down: 'shutting down',
  crash_recovery: 'in crash recovery',
  not_consistent: 'standby not yet consistent',
  hot_standby_off: 'standby with hot_standby off',
  auth_failed: 'authentication failed',
  too_many_connections: 'too many connections',
  error: 'error',
};

/**
 * Maps whatever connecting or querying threw (node-pg errors, Node socket errors, PgfleetErrors
 * from @pgfleet/connection, our own timeout) to a down cause and a one-line reason. Pure.
 */
export function downReasonFromError(err: unknown): DownReason {
  const facts: Facts = { messages: [] };
  collect(err, facts);
  const first = facts.messages[0] ?? String(err);
  // A SQLSTATE means the server answered, unless it is our own statement timeout firing or a
  // session that was cut (57P01/57P02 arrive on an established session, still a reply).
  const withState = (cause: DownCause, sqlState: string): DownReason => ({
    cause,
    reason: facts.serverMessage
      ? `${facts.serverMessage} (${sqlState})`
      : `${CAUSE_TEXT[cause]} (${sqlState})`,
    sqlState,
    answered: cause !== 'timeout',
    ...(facts.serverMessage ? { serverMessage: facts.serverMessage } : {}),
  });

  const s = facts.sqlState;
  if (s) {
    if (s === SqlState.CANNOT_CONNECT_NOW) return withState(cannotConnectNowCause(facts.messages), s);
    if (s === SqlState.ADMIN_SHUTDOWN) return withState('shutting_down', s);
    if (s === SqlState.CRASH_SHUTDOWN) return withState('crash_recovery', s);
    if (s === SqlState.INVALID_PASSWORD || s === SqlState.INVALID_AUTHORIZATION_SPECIFICATION) {
      return withState('auth_failed', s);
    }
    if (s === SqlState.TOO_MANY_CONNECTIONS) return withState('too_many_connections', s);
    if (s === SqlState.QUERY_CANCELED) return withState('timeout', s);
  }
  if (facts.errno) {
    const cause = SOCKET_CAUSES[facts.errno]!;
    return { cause, reason: `${CAUSE_TEXT[cause]} (${facts.errno})`, answered: false };
  }
  // node-pg's own connect timeout and our hard deadline, then a socket closed under us.
  const all = facts.messages.join(' | ');
  if (/timeout expired|timed out|connection timeout|query read timeout/i.test(all)) {
    return { cause: 'timeout', reason: CAUSE_TEXT.timeout, answered: false };
  }
  if (/connection terminated|connection ended|socket (hang up|closed)/i.test(all)) {
    return { cause: 'reset', reason: `${CAUSE_TEXT.reset} (${first})`, answered: false };
  }
  return s
    ? { cause: 'error', reason: `${facts.serverMessage ?? first} (${s})`, sqlState: s, answered: true }
    : { cause: 'error', reason: first, answered: false };
}
