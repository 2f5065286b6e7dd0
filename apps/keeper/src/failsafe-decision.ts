import type { RenewalOutcome } from './leader-lease-decision.js';

/**
 * Failsafe mode (Patroni's `failsafe_mode`), the pure part. Without it a leader that cannot
 * renew its key in etcd fences itself before the key's lease ends, even when etcd is down for
 * everybody and nobody could take over. With it, the leader asks every member directly
 * (POST /failsafe): a member that answers yes promises not to take the leader key for one TTL
 * from the moment it answered, so a leader confirmed by every member may write until the time
 * it *sent* its request plus the TTL (minus its fence budget, as for the key itself). One
 * member silent or refusing, and the leader fences as it would have without failsafe.
 *
 * Whom to ask: every member the leader knows of (its last snapshot, its configuration, and the
 * failsafe record it published in etcd). A member missing from that record never takes the key
 * while the record stands, so no member can promote without having been asked.
 */

export interface FailsafeTarget {
  name: string;
  /** The member's keeper API; null when nobody published or configured one (it cannot confirm). */
  url: string | null;
}

export interface FailsafeAnswer {
  name: string;
  confirmed: boolean;
  /** Why not, for the fence reason and the log. */
  detail: string;
}

/** Every member but `self`, each with the freshest keeper URL known, sorted by name. */
export function failsafeTargets(
  self: string,
  sources: {
    /** Members with a live key in the last snapshot, with the URL each published. */
    snapshot: readonly { name: string; keeperUrl?: string | null }[];
    /** cluster.members of the keeper's configuration. */
    configured: readonly { name: string; keeperUrl?: string }[];
    /** The failsafe record last read from etcd (name → URL). */
    record: Readonly<Record<string, string>> | null;
  },
): FailsafeTarget[] {
  const urls = new Map<string, string | null>();
  const add = (name: string, url: string | null | undefined) => {
    if (name === self) return;
    const known = urls.get(name) ?? null;
    urls.set(name, known ?? url ?? null);
  };
  // Published URLs first: they are what the member itself says it listens on.
  for (const m of sources.snapshot) add(m.name, m.keeperUrl);
  for (const m of sources.configured) add(m.name, m.keeperUrl);
  for (const [name, url] of Object.entries(sources.record ?? {})) add(name, url);
  return [...urls.entries()]
    .map(([name, url]) => ({ name, url }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * The renewal outcome failsafe gives a leader: held until `sentAt + ttlMs` when every member
 * confirmed, else still unreachable, with each refusal named.
 */
export function judgeFailsafe(
  answers: readonly FailsafeAnswer[],
  sentAt: number,
  ttlMs: number,
  etcdError: string,
): RenewalOutcome {
  if (answers.length === 0)
    return { kind: 'unreachable', error: `${etcdError}; failsafe: no other member known to confirm` };
  const missing = answers.filter((a) => !a.confirmed);
  if (missing.length === 0)
    return {
      kind: 'held',
      heldUntil: sentAt + ttlMs,
      failsafe: `all ${answers.length} members confirm this primary (${etcdError})`,
    };
  return {
    kind: 'unreachable',
    error: `${etcdError}; failsafe not confirmed by ${missing.map((a) => `${a.name} (${a.detail})`).join(', ')}`,
  };
}

export interface FailsafeRequestFacts {
  self: string;
  /** The member asking: it says it leads. */
  leader: string;
  /** This member runs an unfenced primary. */
  primary: boolean;
  /** This member is racing for the leader key, or promoting after winning it. */
  claiming: boolean;
  /** Who held the leader key at this member's last read of etcd (null: nobody, or never read). */
  keyHolder: string | null;
}

/** May this member confirm `leader` (and so promise not to take the key for one TTL)? */
export function judgeFailsafeRequest(f: FailsafeRequestFacts): { ok: true } | { ok: false; reason: string } {
  if (f.leader === f.self) return { ok: false, reason: `${f.self} is this member itself` };
  if (f.primary) return { ok: false, reason: `${f.self} runs as a primary itself` };
  if (f.claiming) return { ok: false, reason: `${f.self} is taking over the leader key` };
  if (f.keyHolder !== null && f.keyHolder !== f.leader)
    return { ok: false, reason: `etcd names ${f.keyHolder} as the leader` };
  return { ok: true };
}

/**
 * A standby may race for the leader key: no failsafe promise stands, and the record lists it.
 * A promise lives in the keeper's memory: one that restarted less than a TTL ago may have
 * given one it no longer knows, so while failsafe mode is on (the record is not empty) it
 * waits out one TTL from its start.
 */
export function failsafeBlocksClaim(f: {
  self: string;
  now: number;
  promise: { leader: string; until: number } | null;
  record: Readonly<Record<string, string>> | null;
  startedAt: number;
  ttlMs: number;
}): string | null {
  if (f.promise && f.promise.until > f.now)
    return `confirmed ${f.promise.leader} as the leader in failsafe mode: not taking the key for another ${Math.ceil(f.promise.until - f.now)} ms`;
  const failsafeOn = f.record !== null && Object.keys(f.record).length > 0;
  if (failsafeOn && !(f.self in (f.record ?? {})))
    return `the leader's failsafe record does not list ${f.self}: it could not have been asked, so it does not take the key`;
  if (failsafeOn && f.now < f.startedAt + f.ttlMs)
    return `failsafe mode is on and this keeper started ${Math.round(f.now - f.startedAt)} ms ago: it may have confirmed the leader before, so it waits one TTL before taking the key`;
  return null;
}
