/**
 * The witness's memory and its vote. A standby that lost its primary asks the witness before
 * promoting; the witness grants only when it cannot reach that primary either, when the
 * primary's last heartbeat did not say the standby was unsafe to promote (sync degraded), and
 * when it has not already voted for someone else. A grant lasts until the winner reports in
 * as primary (then it is the primary everyone else must follow). Pure: state + facts in,
 * decision + new state out.
 */

export interface Heartbeat {
  node: string;
  role: 'primary' | 'standby' | 'down';
  timeline: number | null;
  /** From a primary: may its standby be promoted without losing acknowledged commits? */
  standbyPromotable: boolean;
  fenced: boolean;
  /** The sender held its write lease when it sent this, for `leaseMs` from then. */
  writable: boolean;
  leaseMs: number;
  at: number;
}

export interface WitnessState {
  heartbeats: Record<string, Heartbeat>;
  grant: { to: string; primary: string; at: number } | null;
}

export const INITIAL_WITNESS_STATE: WitnessState = { heartbeats: {}, grant: null };

export interface VoteRequest {
  candidate: string;
  primary: string;
}

export interface VoteFacts {
  now: number;
  members: readonly string[];
  /** The witness's own fresh probe of the primary's server. */
  primaryReachable: boolean;
}

export interface VoteDecision {
  granted: boolean;
  reason: string;
  state: WitnessState;
}

export function recordHeartbeat(state: WitnessState, hb: Heartbeat): WitnessState {
  const heartbeats = { ...state.heartbeats, [hb.node]: hb };
  // The winner now runs as primary: the election is over, a later failure may elect anyone.
  const grant = state.grant && hb.role === 'primary' && state.grant.to === hb.node ? null : state.grant;
  return { heartbeats, grant };
}

export function decideVote(state: WitnessState, req: VoteRequest, f: VoteFacts): VoteDecision {
  const deny = (reason: string): VoteDecision => ({ granted: false, reason, state });
  if (!f.members.includes(req.candidate)) return deny(`unknown candidate ${req.candidate}`);
  if (!f.members.includes(req.primary)) return deny(`unknown primary ${req.primary}`);
  if (req.candidate === req.primary) return deny('candidate and primary are the same node');
  if (state.grant && state.grant.to !== req.candidate)
    return deny(`vote already granted to ${state.grant.to}`);
  if (f.primaryReachable) return deny(`witness reaches primary ${req.primary}`);
  const hb = state.heartbeats[req.primary];
  // The primary's keeper vouched for its server (it takes new connections and answers as the
  // only primary) this recently: the candidate sees a partition, not a dead primary. Its lease
  // runs out by itself if the keeper goes silent, and it fences before the standby's deadline.
  if (hb && hb.role === 'primary' && hb.writable && f.now - hb.at < hb.leaseMs)
    return deny(
      `primary ${req.primary}'s keeper holds its write lease (heartbeat ${Math.round(f.now - hb.at)} ms ago, lease ${hb.leaseMs} ms)`,
    );
  // The last word of the primary counts however old it is: it went silent when it died.
  if (hb && hb.role === 'primary' && !hb.standbyPromotable)
    return deny(`primary ${req.primary} last reported its standby not promotable (sync degraded or lagging)`);
  const grant = state.grant ?? { to: req.candidate, primary: req.primary, at: f.now };
  return {
    granted: true,
    reason: `witness cannot reach primary ${req.primary} either`,
    state: { ...state, grant },
  };
}
