import { formatBytes, formatDuration } from './units.js';

/**
 * Standby mode's one question: promote now, keep waiting, or refuse (and say why)?
 * Pure: facts in, action + reason out. The loop gathers the facts (probe of the primary,
 * local replay and WAL receiver state, the witness's vote) and carries the action out.
 *
 * Only silence counts toward promotion. A server that answers, whatever it says (wrong
 * password, too many connections, starting up), is alive; so is a primary whose WAL reaches
 * this standby's walreceiver. A primary that takes no new connection but is alive is its own
 * keeper's business: that keeper stops it (see server-watch-decision.ts) and says so.
 */

/**
 * What this standby last learned about its own synchronous status from the primary.
 * 'required': not streaming (or not counted) at that moment, but the primary's
 * synchronous_standby_names lets no commit be acknowledged without this standby, so it holds
 * every acknowledged one all the same.
 */
export type SyncObservation = 'sync' | 'required' | 'async' | 'degraded' | 'unknown';

/** Outcome of asking the witness. 'none': no witness configured (2-node mode). */
export type WitnessVote = 'none' | 'not-asked' | 'granted' | 'denied' | 'unreachable';

export interface StandbyPolicy {
  failures: number;
  intervalMs: number;
  startupGraceMs: number;
  maxLagOnFailover: number;
  /**
   * How long the primary must have been silent to us before we may promote (timing.ts:
   * fenceAfter + interval + escalation): by then it stopped writing, whatever went wrong.
   */
  promoteAfterMs: number;
  /** True when synchronous_standby_names is configured for the pair. */
  syncRequired: boolean;
}

/** One probe of the primary: it worked, the server answered with an error, or silence. */
export type ProbeOutcome =
  | { kind: 'ok' }
  | { kind: 'answered'; message: string }
  | { kind: 'silent'; error: string };

/** Probe bookkeeping carried from one iteration to the next. */
export interface PrimaryWatch {
  consecutiveFailures: number;
  /** The primary gave a sign of life (an answer of any kind) since this keeper started. */
  primarySeenOnce: boolean;
  lastSeenAt?: number;
  lastError?: string;
}

export const INITIAL_WATCH: PrimaryWatch = { consecutiveFailures: 0, primarySeenOnce: false };

/** Folds one probe result into the watch: any answer is a sign of life, only silence counts. */
export function observePrimaryProbe(watch: PrimaryWatch, probe: ProbeOutcome, now: number): PrimaryWatch {
  if (probe.kind !== 'silent') return { consecutiveFailures: 0, primarySeenOnce: true, lastSeenAt: now };
  return { ...watch, consecutiveFailures: watch.consecutiveFailures + 1, lastError: probe.error };
}

/** This standby's WAL receiver, as evidence about the primary it streams from. */
export interface ReceiverFacts {
  /** pg_stat_wal_receiver.status = 'streaming' (stays so until wal_receiver_timeout). */
  streaming: boolean;
  /** Milliseconds since the last message from the walsender (null: none yet). */
  lastMsgAgeMs: number | null;
  /**
   * Milliseconds since the failed probe was sent. A message younger than that arrived while
   * the primary did not answer the probe: its walsender, at least, is alive.
   */
  probeAgeMs: number;
  /** Where it streams from, for messages ("127.0.0.1:5432"). */
  sender?: string;
}

export interface StandbyFacts {
  now: number;
  startedAt: number;
  probe: ProbeOutcome;
  watch: PrimaryWatch;
  receiver: ReceiverFacts | null;
  /**
   * WAL this standby would lack if promoted now: the largest of (received − replayed) and
   * (last LSN seen on the primary − replayed). null when it could not be measured.
   */
  lagBytes: bigint | null;
  replayPaused: boolean;
  /** Operator pause (`pgfleet-keeper pause`): no automatic action at all. */
  keeperPaused: boolean;
  /**
   * The primary's own keeper told us its server is gone (fast path): one silent probe
   * suffices, and it stopped writing (it only says so once nothing runs there).
   */
  peerReportedDown: boolean;
  sync: SyncObservation;
  witness: WitnessVote;
  witnessDetail?: string;
}

/** `key` names the decision for logs: a decision is logged when its key changes. */
export type StandbyAction =
  | { kind: 'wait'; reason: string; key: string }
  | { kind: 'ask-witness'; reason: string; key: string }
  | { kind: 'promote'; reason: string; key: string }
  | { kind: 'blocked'; reason: string; key: string; gates: string[] };

interface Gate {
  key: string;
  text: string;
}

export function decideStandby(f: StandbyFacts, p: StandbyPolicy): StandbyAction {
  const wait = (key: string, reason: string): StandbyAction => ({ kind: 'wait', key, reason });
  if (f.keeperPaused) return wait('paused', 'keeper paused by operator');
  if (f.probe.kind === 'ok') return wait('reachable', 'primary reachable');
  if (f.probe.kind === 'answered')
    return wait(
      'answered',
      `primary answered: ${f.probe.message}; a server that answers is alive, not promoting (check peer.conninfo if this persists)`,
    );

  const r = f.receiver;
  const receiverAlive = r?.streaming && r.lastMsgAgeMs !== null && r.lastMsgAgeMs <= r.probeAgeMs;
  if (receiverAlive && !f.peerReportedDown)
    return wait(
      'receiver-alive',
      `primary gives no new connection (${f.probe.error}) but streams WAL to this standby (last message ${Math.round(r.lastMsgAgeMs!)} ms ago): alive, not promoting; its keeper stops a stuck postmaster`,
    );

  const needed = f.peerReportedDown ? 1 : p.failures;
  const n = f.watch.consecutiveFailures;
  const unreachable = `primary unreachable ${Math.min(n, needed)}/${needed}${f.peerReportedDown ? ' (its keeper reported it down)' : ''}`;
  if (n < needed) return wait(`unreachable-${n}`, unreachable);

  const gates: Gate[] = [];
  const twoNode = f.witness === 'none';
  if (!f.watch.primarySeenOnce) {
    const left = p.startupGraceMs - (f.now - f.startedAt);
    if (left > 0)
      gates.push({
        key: 'startup-grace',
        text: `primary never seen since start (startupGrace ${formatDuration(p.startupGraceMs)}, ${formatDuration(left)} left)`,
      });
    else if (twoNode && r?.streaming)
      gates.push({
        key: 'never-seen-but-streaming',
        text: `primary never answered since start, yet this standby's walreceiver streams from ${r.sender ?? 'a primary'}: peer.conninfo does not reach the primary this standby follows`,
      });
  }
  if (f.lagBytes === null) gates.push({ key: 'lag-unknown', text: 'replay lag unknown' });
  else if (f.lagBytes > BigInt(p.maxLagOnFailover))
    gates.push({
      key: 'lag',
      text: `replay lag ${formatBytes(f.lagBytes)} > maxLagOnFailover ${formatBytes(p.maxLagOnFailover)}`,
    });
  if (f.replayPaused) gates.push({ key: 'replay-paused', text: 'replay is paused on this standby' });
  if (p.syncRequired && f.watch.primarySeenOnce && f.sync !== 'sync' && f.sync !== 'required') {
    const why =
      f.sync === 'degraded'
        ? 'the primary had degraded synchronous replication'
        : f.sync === 'async'
          ? 'this standby was not synchronous'
          : 'its synchronous status is unknown';
    gates.push({
      key: `sync-${f.sync}`,
      text: `not promotable: ${why} at last contact, it may miss acknowledged commits`,
    });
  }
  if (!f.peerReportedDown) {
    // The primary stops writing once it has no evidence it may (fenceAfter, plus its fence);
    // its last answer to us may precede its own last evidence by an interval. Promoting
    // earlier could leave two writers, with or without a witness.
    const since = f.now - (f.watch.lastSeenAt ?? f.startedAt);
    if (since < p.promoteAfterMs)
      gates.push({
        key: 'fence-deadline',
        text: `waiting for the primary's fence deadline (${formatDuration(p.promoteAfterMs - since)} left)`,
      });
  }

  const lag = f.lagBytes === null ? 'lag unknown' : `lag ${formatBytes(f.lagBytes)}`;
  if (gates.length > 0)
    return {
      kind: 'blocked',
      key: `blocked:${gates.map((g) => g.key).join(',')}`,
      reason: `not promoting: ${unreachable}, ${gates.map((g) => g.text).join('; ')}`,
      gates: gates.map((g) => g.text),
    };

  switch (f.witness) {
    case 'none': {
      const risk = f.watch.primarySeenOnce
        ? ''
        : ', primary never seen since start and startupGrace ran out: if peer.conninfo is wrong this makes two primaries';
      return {
        kind: 'promote',
        key: 'promote',
        reason: `promoting: ${unreachable}, ${lag}, gates passed (no witness: 2-node mode${risk})`,
      };
    }
    case 'not-asked':
      return {
        kind: 'ask-witness',
        key: 'ask-witness',
        reason: `${unreachable}, ${lag}, gates passed; asking the witness`,
      };
    case 'granted':
      return {
        kind: 'promote',
        key: 'promote',
        reason: `promoting: ${unreachable}, ${lag}, gates passed, witness granted its vote`,
      };
    case 'denied': {
      const gate = `witness denied its vote${f.witnessDetail ? `: ${f.witnessDetail}` : ''}`;
      return {
        kind: 'blocked',
        key: 'blocked:witness-denied',
        reason: `not promoting: ${unreachable}, ${gate}`,
        gates: [gate],
      };
    }
    case 'unreachable': {
      const gate = `witness unreachable${f.witnessDetail ? `: ${f.witnessDetail}` : ''}`;
      return {
        kind: 'blocked',
        key: 'blocked:witness-unreachable',
        reason: `not promoting: ${unreachable}, ${gate}`,
        gates: [gate],
      };
    }
  }
}
