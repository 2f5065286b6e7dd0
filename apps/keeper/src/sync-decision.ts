import { formatSyncStandbyNames, NO_SYNC_STANDBYS, type SyncStandbySpec } from '@pgfleet/roles';
import type { Lsn } from '@pgfleet/wal';
import type { SyncRecord } from './cluster-types.js';

/**
 * The primary's plan for `synchronous_standby_names` in an N-node cluster, and for the promise
 * it keeps in the DCS about it (SyncRecord: every acknowledged commit is on at least `minAcks`
 * of `voters`; candidate-decision.ts checks it after a failure). Pure: facts in, ordered steps
 * out; the loop carries them out in order and stops at the first that fails.
 *
 * Target: `ANY n (every healthy standby)` with n = min(wanted, healthy count). A listed standby
 * stays while healthy (the loop's watch gives it failures × interval of grace); an unlisted one
 * joins once it streams within restoreLag. With fewer healthy standbys than wanted, n shrinks to
 * what is there, and with none the setting becomes '' so commits never hang; the promise then
 * says minAcks 0 and no standby is promoted automatically until a new setting is confirmed.
 *
 * Ordering keeps the promise true at every instant (Patroni's quorum.py invariant, stated on
 * the promise itself): before the setting changes, the promise is widened to cover commits
 * acknowledged under the old setting *and* the new one (voters = union, minAcks = min); it is
 * tightened to the new setting only once the new setting is *confirmed*: at least n of its
 * standbys flushed past `currentSince`, the WAL position noted right after the setting took
 * effect, so every commit acknowledged before the switch is on them too.
 */

export interface SyncStandbyFacts {
  /** application_name (the member name). */
  name: string;
  /** Connected, or disconnected for less than the degrade grace (failures × interval). */
  healthy: boolean;
  /** Streaming now with a flush lag within restoreLag: may (re)join the synchronous set. */
  caughtUp: boolean;
  /** pg_stat_replication.flush_lsn; null when not connected. */
  flushLsn: Lsn | null;
}

export interface SyncPlanInput {
  /** This primary's member name. */
  leader: string;
  /** n of `ANY n (...)`; 0 runs the cluster asynchronously. */
  wanted: number;
  standbys: readonly SyncStandbyFacts[];
  /** synchronous_standby_names as the server has it now. */
  current: SyncStandbySpec;
  /** The promise as stored in the DCS (null when absent). */
  record: SyncRecord | null;
  /**
   * WAL insert position noted right after `current` took effect (after the reload that set it,
   * or at keeper start / promotion). Null when not noted yet: nothing is confirmed.
   */
  currentSince: Lsn | null;
}

export type SyncStep =
  /** Write the promise to the DCS (leader only, compare on the leader key). */
  | { kind: 'write-record'; record: SyncRecord; reason: string }
  /** ALTER SYSTEM SET synchronous_standby_names = value; reload; confirm; then note currentSince. */
  | { kind: 'set-names'; spec: SyncStandbySpec; value: string; reason: string };

export interface SyncPlan {
  steps: SyncStep[];
  target: SyncStandbySpec;
  /** Fewer synchronous standbys than wanted (none at all when target is ''). */
  degraded: boolean;
  reason: string;
}

const lower = (s: string) => s.toLowerCase();

export function planSyncStandbys(input: SyncPlanInput): SyncPlan {
  const facts = input.standbys.filter((s) => lower(s.name) !== lower(input.leader));
  const cur = describeSpec(input.current, facts);
  const keep = facts.filter((s) => s.healthy && cur.names.has(lower(s.name)));
  const join = facts.filter((s) => s.healthy && s.caughtUp && !cur.names.has(lower(s.name)));
  const chosen = [...keep, ...join].map((s) => s.name).sort(compareNames);
  const n = Math.min(input.wanted, chosen.length);
  const target: SyncStandbySpec =
    n > 0 ? { method: 'any', num: n, names: chosen } : { ...NO_SYNC_STANDBYS, names: [] };
  const tgt = describeSpec(target, facts);
  const degraded = input.wanted > 0 && n < input.wanted;
  const steps: SyncStep[] = [];
  const record = input.record;
  const valid = record !== null && covers(record, input.leader, cur) ? record : null;
  const confirmed = isConfirmed(cur, facts, input.currentSince);
  const steady: SyncRecord = {
    leader: input.leader,
    voters: sortedNames(cur.names, facts),
    minAcks: cur.minAcks,
  };

  if (sameSpec(input.current, target)) {
    if (record && sameRecord(record, steady)) return plan(steps, target, degraded, 'in place');
    if (steady.minAcks === 0 || confirmed) {
      steps.push({
        kind: 'write-record',
        record: steady,
        reason: `the setting ${show(target)} is confirmed`,
      });
    } else if (!valid) {
      steps.push({
        kind: 'write-record',
        record: { ...steady, minAcks: 0 },
        reason: `no promise in the DCS covers ${show(input.current)}: promise nothing until it is confirmed`,
      });
    }
    return plan(
      steps,
      target,
      degraded,
      steps.length ? 'promise updated' : `waiting for ${cur.minAcks} standby(s) to confirm ${show(target)}`,
    );
  }

  // The promise the switch starts from: the stored one if it holds for the current setting.
  const base: SyncRecord = valid ?? (confirmed ? steady : { ...steady, minAcks: 0 });
  const widened: SyncRecord = covers(base, input.leader, tgt)
    ? base
    : {
        leader: input.leader,
        voters: [...new Set([...base.voters, ...sortedNames(tgt.names, facts)])].sort(compareNames),
        minAcks: Math.min(base.minAcks, tgt.minAcks),
      };
  if (!record || !sameRecord(record, widened)) {
    steps.push({
      kind: 'write-record',
      record: widened,
      reason: `cover commits acknowledged under ${show(input.current)} and ${show(target)} before switching`,
    });
  }
  const why = describeChange(input.current, target, facts, cur, input.wanted);
  steps.push({ kind: 'set-names', spec: target, value: formatSyncStandbyNames(target), reason: why });
  return plan(steps, target, degraded, why);
}

interface SpecFacts {
  /** Lower-cased names the setting lists ('*' expands to every known standby). */
  names: Set<string>;
  /** Acknowledgements every commit waits for, as a promise: 0 when unknown or none. */
  minAcks: number;
}

function describeSpec(spec: SyncStandbySpec, facts: readonly SyncStandbyFacts[]): SpecFacts {
  if (spec.method === 'none') return { names: new Set(), minAcks: 0 };
  if (spec.names.includes('*')) {
    // Any standby may acknowledge, including ones we do not know: promise nothing.
    return { names: new Set(facts.map((f) => lower(f.name))), minAcks: 0 };
  }
  const names = new Set(spec.names.map(lower));
  // FIRST n and ANY n both put every commit on at least n of the listed standbys.
  return { names, minAcks: Math.min(spec.num, names.size) };
}

/** The promise holds for commits acknowledged under a setting with these facts. */
function covers(record: SyncRecord, leader: string, spec: SpecFacts): boolean {
  if (lower(record.leader) !== lower(leader)) return false;
  const voters = new Set(record.voters.map(lower));
  for (const n of spec.names) if (!voters.has(n)) return false;
  return record.minAcks <= spec.minAcks;
}

function isConfirmed(spec: SpecFacts, facts: readonly SyncStandbyFacts[], since: Lsn | null): boolean {
  if (spec.minAcks === 0) return true;
  if (since === null) return false;
  const past = facts.filter(
    (f) => spec.names.has(lower(f.name)) && f.flushLsn !== null && f.flushLsn >= since,
  );
  return past.length >= spec.minAcks;
}

function sameSpec(a: SyncStandbySpec, b: SyncStandbySpec): boolean {
  if (a.method === 'none' || b.method === 'none') return a.method === b.method;
  const an = a.names.map(lower).sort();
  const bn = b.names.map(lower).sort();
  return (
    a.method === b.method && a.num === b.num && an.length === bn.length && an.every((n, i) => n === bn[i])
  );
}

function sameRecord(a: SyncRecord, b: SyncRecord): boolean {
  const av = a.voters.map(lower).sort();
  const bv = b.voters.map(lower).sort();
  return (
    lower(a.leader) === lower(b.leader) &&
    a.minAcks === b.minAcks &&
    av.length === bv.length &&
    av.every((v, i) => v === bv[i])
  );
}

/** Lower-cased names back to the spelling of the standbys' facts (the setting's own when unknown). */
function sortedNames(names: Set<string>, facts: readonly SyncStandbyFacts[]): string[] {
  return [...names].map((n) => facts.find((f) => lower(f.name) === n)?.name ?? n).sort(compareNames);
}

function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function show(spec: SyncStandbySpec): string {
  return spec.method === 'none' ? "''" : formatSyncStandbyNames(spec);
}

function describeChange(
  from: SyncStandbySpec,
  to: SyncStandbySpec,
  facts: readonly SyncStandbyFacts[],
  cur: SpecFacts,
  wanted: number,
): string {
  const toNames = new Set(to.names.map(lower));
  const dropped = [...cur.names].filter((n) => !toNames.has(n));
  const added = to.names.filter((n) => !cur.names.has(lower(n)));
  const parts: string[] = [];
  if (dropped.length) parts.push(`degrade ${sortedNames(new Set(dropped), facts).join(', ')} (not healthy)`);
  if (added.length) parts.push(`restore ${added.join(', ')} (streaming, caught up)`);
  if (to.method === 'none' && wanted > 0) parts.push('no healthy standby: commits stop waiting');
  if (!parts.length) parts.push(`${wanted} synchronous standby(s) wanted`);
  return `${parts.join('; ')}: ${show(from)} -> ${show(to)}`;
}

function plan(steps: SyncStep[], target: SyncStandbySpec, degraded: boolean, reason: string): SyncPlan {
  return { steps, target, degraded, reason };
}
