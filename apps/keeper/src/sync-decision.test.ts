import { NO_SYNC_STANDBYS, parseSyncStandbyNames, type SyncStandbySpec } from '@pgfleet/roles';
import { toLsn } from '@pgfleet/wal';
import { describe, expect, it } from 'vitest';
import type { SyncRecord } from './cluster-types.js';
import { planSyncStandbys, type SyncPlanInput, type SyncStandbyFacts } from './sync-decision.js';

const L = (n: number) => toLsn(BigInt(n));

const up = (name: string, flush = 100): SyncStandbyFacts => ({
  name,
  healthy: true,
  caughtUp: true,
  flushLsn: L(flush),
});
const lagging = (name: string, flush = 50): SyncStandbyFacts => ({
  name,
  healthy: true,
  caughtUp: false,
  flushLsn: L(flush),
});
const down = (name: string): SyncStandbyFacts => ({ name, healthy: false, caughtUp: false, flushLsn: null });
const rec = (voters: string[], minAcks: number, leader = 'a'): SyncRecord => ({ leader, voters, minAcks });

function input(over: Partial<SyncPlanInput>): SyncPlanInput {
  return {
    leader: 'a',
    wanted: 1,
    standbys: [up('b'), up('c')],
    current: parseSyncStandbyNames('ANY 1 (b, c)'),
    record: rec(['b', 'c'], 1),
    currentSince: L(90),
    ...over,
  };
}

/** The plan's steps in a compact form: `record b,c/1`, `names ANY 1 (b)`. */
function steps(i: SyncPlanInput): string[] {
  return planSyncStandbys(i).steps.map((s) =>
    s.kind === 'write-record'
      ? `record ${s.record.voters.join(',')}/${s.record.minAcks}`
      : `names ${s.value || "''"}`,
  );
}

describe('planSyncStandbys', () => {
  it.each<[string, Partial<SyncPlanInput>, string[]]>([
    ['leaves a healthy, confirmed setting alone', {}, []],
    [
      'degrades a dead standby: the promise (1 of b, c) already covers ANY 1 (b), so only the setting changes',
      { standbys: [up('b'), down('c')] },
      ['names ANY 1 (b)'],
    ],
    [
      'tightens the promise to the new setting once it is confirmed (b flushed past the switch)',
      {
        standbys: [up('b', 120), down('c')],
        current: parseSyncStandbyNames('ANY 1 (b)'),
        currentSince: L(110),
      },
      ['record b/1'],
    ],
    [
      'does not tighten before confirmation (b has not flushed past the switch yet)',
      {
        standbys: [up('b', 100), down('c')],
        current: parseSyncStandbyNames('ANY 1 (b)'),
        currentSince: L(110),
      },
      [],
    ],
    [
      'does not tighten when the switch position was never noted',
      {
        standbys: [up('b', 100), down('c')],
        current: parseSyncStandbyNames('ANY 1 (b)'),
        currentSince: null,
      },
      [],
    ],
    [
      "with no healthy standby: first promise nothing, then stop waiting (''), so commits never hang",
      { standbys: [down('b'), down('c')] },
      ['record b,c/0', "names ''"],
    ],
    [
      'restores a standby that streams and caught up: ANY 1 (b) -> ANY 1 (b, c), widening the promise first',
      { standbys: [up('b'), up('c')], current: parseSyncStandbyNames('ANY 1 (b)'), record: rec(['b'], 1) },
      ['record b,c/1', 'names ANY 1 (b, c)'],
    ],
    [
      'does not restore a standby still lagging beyond restoreLag',
      {
        standbys: [up('b'), lagging('c')],
        current: parseSyncStandbyNames('ANY 1 (b)'),
        record: rec(['b'], 1),
      },
      [],
    ],
    [
      'keeps a listed standby that lags but is healthy (degrading is for the unhealthy)',
      { standbys: [up('b'), lagging('c')] },
      [],
    ],
    [
      'ANY 2 wanted, three healthy: lists all three',
      {
        wanted: 2,
        standbys: [up('b'), up('c'), up('d')],
        current: parseSyncStandbyNames('ANY 2 (b, c, d)'),
        record: rec(['b', 'c', 'd'], 2),
      },
      [],
    ],
    [
      'ANY 2 wanted, one of three down: still ANY 2 of the two healthy ones',
      {
        wanted: 2,
        standbys: [up('b'), up('c'), down('d')],
        current: parseSyncStandbyNames('ANY 2 (b, c, d)'),
        record: rec(['b', 'c', 'd'], 2),
      },
      ['names ANY 2 (b, c)'],
    ],
    [
      'ANY 2 wanted, only one healthy: degrades to ANY 1, lowering the promise before the setting',
      {
        wanted: 2,
        standbys: [up('b'), down('c'), down('d')],
        current: parseSyncStandbyNames('ANY 2 (b, c, d)'),
        record: rec(['b', 'c', 'd'], 2),
      },
      ['record b,c,d/1', 'names ANY 1 (b)'],
    ],
    [
      'raising n (1 -> 2): the setting first, the promise after confirmation',
      { wanted: 2 },
      ['names ANY 2 (b, c)'],
    ],
    [
      'lowering n (2 -> 1): the promise first, then the setting',
      { wanted: 1, current: parseSyncStandbyNames('ANY 2 (b, c)'), record: rec(['b', 'c'], 2) },
      ['record b,c/1', 'names ANY 1 (b, c)'],
    ],
    [
      'an asynchronous cluster (wanted 0) keeps an empty setting and promises nothing',
      { wanted: 0, current: NO_SYNC_STANDBYS, record: null },
      ['record /0'],
    ],
    [
      'turning quorum commit off (1 -> 0): the promise drops to nothing before the setting does',
      { wanted: 0 },
      ['record b,c/0', "names ''"],
    ],
    [
      "a new primary with an old primary's promise: promise nothing for its own setting until confirmed",
      { record: rec(['a', 'c'], 1, 'z'), currentSince: L(200) },
      ['record b,c/0'],
    ],
    [
      'a new primary whose setting is confirmed writes its own promise at once',
      { record: rec(['a', 'c'], 1, 'z'), currentSince: L(90) },
      ['record b,c/1'],
    ],
    [
      'no promise at all and an unconfirmed switch: widen from nothing',
      { record: null, currentSince: null, standbys: [up('b'), down('c')] },
      ['record b,c/0', 'names ANY 1 (b)'],
    ],
    [
      'replaces a FIRST setting by ANY, which promises the same',
      { current: parseSyncStandbyNames('FIRST 1 (b, c)') },
      ['names ANY 1 (b, c)'],
    ],
    [
      "treats '*' as a promise of nothing (any unknown standby may acknowledge)",
      { current: parseSyncStandbyNames('ANY 1 (*)'), record: rec(['b', 'c'], 1), currentSince: null },
      ['record b,c/0', 'names ANY 1 (b, c)'],
    ],
    ['never lists the primary itself', { standbys: [up('a'), up('b'), up('c')] }, []],
    [
      'matches names case-insensitively, as the server does',
      { current: parseSyncStandbyNames('ANY 1 (B, "C")') },
      [],
    ],
  ])('%s', (_title, over, expected) => {
    expect(steps(input(over))).toEqual(expected);
  });

  it('reports degraded while fewer than n standbys are synchronous, with a reason naming them', () => {
    const p = planSyncStandbys(input({ wanted: 2, standbys: [up('b'), down('c')] }));
    expect(p.degraded).toBe(true);
    expect(p.reason).toMatch(/degrade c \(not healthy\): ANY 1 \(b, c\) -> ANY 1 \(b\)/);
    expect(planSyncStandbys(input({})).degraded).toBe(false);
  });

  it('keeps the promise true for every acknowledged commit through random faults, restarts and failed steps', () => {
    let seed = 7;
    const rand = (n: number) => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) % n;
    };
    const names = ['b', 'c', 'd'];
    let checks = 0;
    let switches = 0;
    for (let run = 0; run < 200; run++) {
      // The world: the primary's WAL, each standby's flushed position and link, the setting.
      let insert = 100;
      const flush: Record<string, number> = { b: 100, c: 100, d: 100 };
      const connected: Record<string, boolean> = { b: true, c: true, d: true };
      let spec: SyncStandbySpec = NO_SYNC_STANDBYS;
      let record: SyncRecord | null = null;
      let since: number | null = null;
      const pending: number[] = [];
      const acked: number[] = [];
      const wanted = 1 + rand(2);

      const ackable = (lsn: number) => {
        if (spec.method === 'none') return true;
        const listed = new Set(spec.names.map((n) => n.toLowerCase()));
        return names.filter((n) => listed.has(n) && flush[n]! >= lsn).length >= spec.num;
      };
      const check = () => {
        // The invariant: every acknowledged commit is on at least minAcks voters. Positions
        // only grow, so the newest acknowledged commit is the hardest case.
        if (!record || acked.length === 0) return;
        const newest = Math.max(...acked);
        const holders = record.voters.filter((v) => (flush[v] ?? 0) >= newest).length;
        checks++;
        if (holders < record.minAcks) {
          throw new Error(
            `run ${run}: commit ${newest} is on ${holders} voters, promise ${JSON.stringify(record)}`,
          );
        }
      };
      const tick = () => {
        for (const n of names) {
          if (rand(10) === 0) connected[n] = !connected[n];
          if (connected[n] && rand(2) === 0) flush[n] = Math.max(flush[n]!, insert - rand(30));
        }
        if (rand(2) === 0) pending.push(++insert);
        for (let i = pending.length - 1; i >= 0; i--) {
          if (ackable(pending[i]!)) acked.push(...pending.splice(i, 1));
        }
        check();
      };

      for (let loop = 0; loop < 60; loop++) {
        if (rand(15) === 0) since = insert; // keeper restart: it notes the position at start
        const facts = names.map((n) => ({
          name: n,
          healthy: connected[n]!,
          caughtUp: connected[n]! && insert - flush[n]! <= 20,
          flushLsn: connected[n] ? L(flush[n]!) : null,
        }));
        const plan = planSyncStandbys({
          leader: 'a',
          wanted,
          standbys: facts,
          current: spec,
          record,
          currentSince: since === null ? null : L(since),
        });
        tick(); // the world moves between gathering facts and acting on them
        for (const step of plan.steps) {
          if (rand(8) === 0) break; // the DCS or the server failed this step: stop here
          if (step.kind === 'write-record') record = step.record;
          else {
            spec = step.spec;
            since = null;
            switches++;
            tick();
            if (rand(4) > 0) since = insert; // noted after the reload (or lost in a crash)
          }
          check();
        }
        tick();
      }
    }
    expect(checks).toBeGreaterThan(10_000);
    expect(switches).toBeGreaterThan(500);
  });
});
