import type { DownCause } from '@pgfleet/roles';
import { formatDuration } from './units.js';

/**
 * The keeper's watch over its own primary, between loop iterations: is the server still one
 * that may write? Sessions of a stopped or hung postmaster keep committing while it takes no
 * new connection; a server stuck in crash recovery comes back writable later; and a keeper
 * that was itself frozen (the whole host) cannot know what happened meanwhile. Each case
 * must end before the standby may promote (see timing.ts). Pure: facts in, verdict out.
 */

export interface ServerWatch {
  /** Last time the postmaster answered a new connection (probeHandshake). */
  lastAnswerAt: number | null;
  /** The last handshake went unanswered: since when the answers stopped. */
  silentSince: number | null;
  lastSilence?: string;
  /** Last time the watch ran: a large gap means this keeper itself was not running. */
  lastTickAt: number | null;
}

export const INITIAL_SERVER_WATCH: ServerWatch = { lastAnswerAt: null, silentSince: null, lastTickAt: null };

export function observeHandshake(
  w: ServerWatch,
  r: { answered: true } | { answered: false; reason: string },
  now: number,
): ServerWatch {
  if (r.answered) return { ...w, lastAnswerAt: now, silentSince: null };
  const { lastSilence: _, ...rest } = w;
  return { ...rest, silentSince: w.silentSince ?? now, lastSilence: r.reason };
}

export interface ServerWatchFacts {
  now: number;
  /**
   * This keeper is responsible for a primary that may write: it last saw its server as an
   * unfenced primary, is not paused, no switchover is running, and it has not stopped it yet.
   */
  guarding: boolean;
  /** When the main loop last read an unfenced primary on the local server. */
  lastPrimaryAt: number | null;
  /** The last local read found the server down for this cause (undefined: it was up). */
  downCause?: DownCause;
  watch: ServerWatch;
  /** now − the previous tick of the watch. */
  sinceLastTickMs: number;
}

export interface ServerWatchPolicy {
  fenceAfterMs: number;
  /** The watch's own period: a gap of several periods means the keeper was not running. */
  tickMs: number;
}

export type ServerWatchVerdict =
  | { kind: 'ok' }
  /** No positive evidence right now: /primary must stop answering 200, nothing more yet. */
  | { kind: 'suspect'; reason: string }
  /**
   * This keeper was not running for fenceAfter: stop vouching and look at the peer now (the
   * loop fences when it finds the standby promoted). Not a fence by itself: a stalled keeper
   * beside a healthy pair must not end its sessions.
   */
  | { kind: 'recheck'; reason: string }
  /** The server cannot be fenced with SQL and must not write again: stop it hard. */
  | { kind: 'stop'; reason: string };

/** Causes for which a server that comes back would come back as a writable primary. */
const COMES_BACK: ReadonlySet<DownCause> = new Set(['crash_recovery', 'starting_up']);

export function decideServerWatch(f: ServerWatchFacts, p: ServerWatchPolicy): ServerWatchVerdict {
  if (!f.guarding) return { kind: 'ok' };
  // A keeper frozen with its host (SIGSTOP, VM pause) wakes up with its server: whatever the
  // standby did meanwhile, /primary must not send writes here before we know.
  if (f.sinceLastTickMs >= p.fenceAfterMs && f.sinceLastTickMs >= 3 * p.tickMs)
    return {
      kind: 'recheck',
      reason: `this keeper did not run for ${formatDuration(f.sinceLastTickMs)} (≥ fenceAfter ${formatDuration(p.fenceAfterMs)}): the standby may have been promoted meanwhile`,
    };
  const w = f.watch;
  if (w.silentSince !== null) {
    // Counted from the last answer: the long-lived session of the main loop keeps working
    // when only the postmaster is stopped, so reads of "primary" there prove nothing.
    const silent = f.now - (w.lastAnswerAt ?? w.silentSince);
    const why = `the local postmaster answered no new connection for ${formatDuration(silent)}${w.lastSilence ? ` (${w.lastSilence})` : ''}`;
    if (silent >= p.fenceAfterMs)
      return {
        kind: 'stop',
        reason: `${why} ≥ fenceAfter ${formatDuration(p.fenceAfterMs)}: its sessions may still commit and the standby may promote`,
      };
    return { kind: 'suspect', reason: why };
  }
  if (f.downCause !== undefined && COMES_BACK.has(f.downCause)) {
    const since = f.now - (f.lastPrimaryAt ?? f.now);
    const why = `the local server has not served as primary for ${formatDuration(since)} (${f.downCause.replace('_', ' ')})`;
    if (since >= p.fenceAfterMs)
      return {
        kind: 'stop',
        reason: `${why} ≥ fenceAfter ${formatDuration(p.fenceAfterMs)}: it must not come back as a second primary`,
      };
    return { kind: 'suspect', reason: why };
  }
  return { kind: 'ok' };
}
