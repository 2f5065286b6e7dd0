import { parseLsn, toLsn } from '@pgfleet/wal';
import { describe, expect, it } from 'vitest';
import {
  type CandidateFacts,
  type CandidateInput,
  selectCandidate,
  walPosition,
} from './candidate-decision.js';
import { DEFAULT_TAGS, type SyncRecord } from './cluster-types.js';

const L = (n: number) => toLsn(BigInt(0x5000000 + n));

function standby(name: string, at: number, over: Partial<CandidateFacts> = {}): CandidateFacts {
  return {
    name,
    reachable: true,
    role: 'standby',
    timeline: 3,
    receivedLsn: L(at),
    replayedLsn: L(at),
    streamingAtFailure: true,
    tags: { ...DEFAULT_TAGS },
    ...over,
  };
}

const deadPrimary: CandidateFacts = {
  name: 'a',
  reachable: false,
  role: 'unknown',
  timeline: 3,
  receivedLsn: null,
  replayedLsn: null,
  streamingAtFailure: false,
  tags: { ...DEFAULT_TAGS },
};

function input(members: CandidateFacts[], over: Partial<CandidateInput> = {}): CandidateInput {
  return {
    members: [deadPrimary, ...members],
    formerLeader: 'a',
    lastPrimaryLsn: L(1000),
    clusterTimeline: 3,
    synchronous: false,
    sync: null,
    maxLagOnFailover: 1024 * 1024,
    ...over,
  };
}

const quorum = (voters: string[], minAcks: number, leader = 'a'): Partial<CandidateInput> => ({
  synchronous: true,
  sync: { leader, voters, minAcks },
});

describe('selectCandidate', () => {
  it.each<[string, CandidateInput, string | null, RegExp]>([
    [
      'picks the standby with the highest WAL position',
      input([standby('b', 500), standby('c', 900), standby('d', 700)]),
      'c',
      /c at 0\/5000384, the furthest/,
    ],
    [
      'counts received WAL, not only replayed WAL',
      input([standby('b', 500, { receivedLsn: L(950) }), standby('c', 900)]),
      'b',
      /^b at/,
    ],
    [
      'breaks an LSN tie by failoverPriority',
      input([standby('b', 900), standby('c', 900, { tags: { noFailover: false, failoverPriority: 5 } })]),
      'c',
      /ties broken by failoverPriority/,
    ],
    [
      'breaks a full tie by name, so every keeper agrees',
      input([standby('d', 900), standby('b', 900), standby('c', 900)]),
      'b',
      /^b at/,
    ],
    [
      'never picks a member tagged noFailover, even the furthest',
      input([standby('b', 500), standby('c', 900, { tags: { noFailover: true, failoverPriority: 9 } })]),
      'b',
      /^b at/,
    ],
    [
      'treats failoverPriority 0 as noFailover',
      input([standby('b', 500), standby('c', 900, { tags: { noFailover: false, failoverPriority: 0 } })]),
      'b',
      /^b at/,
    ],
    [
      'skips an unreachable member',
      input([standby('b', 500), standby('c', 900, { reachable: false })]),
      'b',
      /^b/,
    ],
    [
      'skips a member that was not streaming when the primary failed',
      input([standby('b', 500), standby('c', 900, { streamingAtFailure: false })]),
      'b',
      /^b/,
    ],
    [
      'skips a member further behind than maxLagOnFailover',
      input([standby('b', 500)], { lastPrimaryLsn: L(500 + 2 * 1024 * 1024) }),
      null,
      /b: 2\.0 MiB behind a's last position \(maxLagOnFailover 1\.0 MiB\)/,
    ],
    [
      'skips a member on an older timeline',
      input([standby('b', 500, { timeline: 2 }), standby('c', 400)]),
      'c',
      /^c/,
    ],
    [
      'does nothing while the old primary still answers as a primary',
      input([standby('b', 500)], {
        members: [{ ...deadPrimary, reachable: true, role: 'primary' }, standby('b', 500)],
      }),
      null,
      /a is a running primary/,
    ],
    [
      'does nothing when another member already runs as a primary',
      input([standby('b', 500), standby('c', 900, { role: 'primary' })]),
      null,
      /c is a running primary/,
    ],
    [
      'ANY 1 of 3: needs every voter to report, since the only ack may be on any one',
      input([standby('b', 900), standby('c', 500), standby('d', 700)], quorum(['b', 'c', 'd'], 1)),
      'b',
      /^b/,
    ],
    [
      'ANY 1 of 3 with a voter unreachable: nobody is provably safe',
      input(
        [standby('b', 900), standby('c', 500), standby('d', 700, { reachable: false })],
        quorum(['b', 'c', 'd'], 1),
      ),
      null,
      /b: cannot prove it holds every acknowledged commit: 2 of 3 voters .* 3 needed/,
    ],
    [
      'ANY 2 of 3 with a voter unreachable: two reporting voters suffice',
      input(
        [standby('b', 900), standby('c', 500), standby('d', 700, { reachable: false })],
        quorum(['b', 'c', 'd'], 2),
      ),
      'b',
      /^b/,
    ],
    [
      'a voter ahead (tagged noFailover) does not vote, the others may still make the quorum',
      input(
        [
          standby('b', 700),
          standby('c', 500),
          standby('d', 900, { tags: { noFailover: true, failoverPriority: 1 } }),
        ],
        quorum(['b', 'c', 'd'], 2),
      ),
      'b',
      /^b/,
    ],
    [
      'a voter ahead leaves a lower candidate short of the quorum',
      input(
        [
          standby('b', 700),
          standby('c', 500),
          standby('d', 900, { tags: { noFailover: true, failoverPriority: 1 } }),
        ],
        quorum(['b', 'c', 'd'], 1),
      ),
      null,
      /b: cannot prove .* 2 of 3 voters/,
    ],
    [
      'a non-voter needs one vote more than a voter (it cannot vote for itself)',
      input([standby('b', 500), standby('c', 600), standby('e', 900)], quorum(['b', 'c'], 1)),
      'e',
      /^e/,
    ],
    [
      'a non-voter short of that extra vote is not safe',
      input(
        [standby('b', 500), standby('c', 600, { reachable: false }), standby('e', 900)],
        quorum(['b', 'c'], 1),
      ),
      null,
      /e: cannot prove .* 1 of 2 voters .* 2 needed/,
    ],
    [
      'a primary that ran degraded (minAcks 0) leaves nobody provably safe',
      input([standby('b', 900), standby('c', 900)], quorum(['b', 'c'], 0)),
      null,
      /ran without enough synchronous standbys/,
    ],
    [
      'quorum commit without a promise in the DCS: nobody is safe',
      input([standby('b', 900)], { synchronous: true, sync: null }),
      null,
      /no synchronous-commit promise from a/,
    ],
    [
      'a promise written by an earlier primary does not count',
      input([standby('b', 900), standby('c', 900)], quorum(['b', 'c'], 1, 'z')),
      null,
      /promise is from z, not from a/,
    ],
    [
      'an operator-requested candidate is the only one considered',
      input([standby('b', 900), standby('c', 800)], { requested: { name: 'c', force: false } }),
      'c',
      /requested by the operator/,
    ],
    [
      'a requested candidate still has to be safe without force',
      input([standby('b', 900), standby('c', 800, { streamingAtFailure: false })], {
        requested: { name: 'c', force: false },
      }),
      null,
      /c: was not streaming/,
    ],
    [
      'force skips the lag, streaming and quorum checks, not reachability',
      input([standby('b', 900), standby('c', 800, { streamingAtFailure: false })], {
        ...quorum(['b', 'c'], 0),
        requested: { name: 'c', force: true },
      }),
      'c',
      /requested by the operator/,
    ],
    [
      'names an unknown requested candidate',
      input([standby('b', 900)], { requested: { name: 'zz', force: true } }),
      null,
      /requested candidate zz is not a known member/,
    ],
  ])('%s', (_title, given, best, reason) => {
    const d = selectCandidate(given);
    expect(d.best).toBe(best);
    expect(d.reason).toMatch(reason);
    if (best) expect(d.ranking[0]?.name).toBe(best);
  });

  it('never picks a standby that lacks an acknowledged commit, over many random quorum histories', () => {
    // Adversarial check of the quorum rule: a commit at P was acknowledged by `minAcks` voters
    // (they hold P); every other member holds P or not at random; any member may be
    // unreachable or tagged. Whatever the decision picks must hold P.
    let seed = 42;
    // mulberry32: a small deterministic PRNG, so a failure reproduces.
    const rand = (n: number) => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) % n;
    };
    let picked = 0;
    let refused = 0;
    for (let run = 0; run < 5000; run++) {
      const names = ['b', 'c', 'd', 'e', 'f'].slice(0, 2 + rand(4));
      const voters = names.filter(() => rand(4) > 0);
      if (voters.length === 0) continue;
      const minAcks = 1 + rand(voters.length);
      const acked = new Set([...voters].sort(() => rand(3) - 1).slice(0, minAcks));
      const P = 1000;
      const members = names.map((name) =>
        standby(name, acked.has(name) ? P + rand(50) : P - 200 + rand(400), {
          reachable: rand(5) > 0,
          streamingAtFailure: rand(8) > 0,
          tags: { noFailover: rand(6) === 0, failoverPriority: rand(3) },
        }),
      );
      const sync: SyncRecord = { leader: 'a', voters, minAcks };
      const d = selectCandidate(input(members, { synchronous: true, sync, lastPrimaryLsn: null }));
      if (d.best === null) {
        refused++;
        continue;
      }
      picked++;
      const chosen = members.find((m) => m.name === d.best)!;
      expect(walPosition(chosen)! >= L(P)).toBe(true);
    }
    // The check must have had something to check in both directions.
    expect(picked).toBeGreaterThan(500);
    expect(refused).toBeGreaterThan(500);
  });

  it('takes the larger of received and replayed positions', () => {
    expect(walPosition({ receivedLsn: parseLsn('0/10'), replayedLsn: parseLsn('0/20') })).toBe(
      parseLsn('0/20'),
    );
    expect(walPosition({ receivedLsn: null, replayedLsn: parseLsn('0/20') })).toBe(parseLsn('0/20'));
    expect(walPosition({ receivedLsn: null, replayedLsn: null })).toBeNull();
  });
});
