import { describe, expect, it } from 'vitest';
import {
  decidePrimary,
  INITIAL_STANDBY_WATCH,
  observeStandby,
  type PrimaryFacts,
  type PrimaryPolicy,
  type StandbyWatch,
} from './primary-decision.js';

const sync: PrimaryPolicy = { failures: 3, syncStandbyNames: 'FIRST 1 (b)', syncRestoreLag: 1024 };

const healthy = (over: Partial<PrimaryFacts> = {}): PrimaryFacts => ({
  keeperPaused: false,
  currentSyncNames: 'FIRST 1 (b)',
  standbyReachable: true,
  row: { state: 'streaming', syncState: 'sync' },
  standby: { replayLsn: 1000n, receiveLsn: 1000n, paused: false },
  primaryLsn: 1000n,
  ...over,
});

/** Runs the facts through observe + decide `times` times, like the loop does. */
function run(facts: PrimaryFacts[], policy = sync, watch: StandbyWatch = INITIAL_STANDBY_WATCH) {
  let w = watch;
  let action = decidePrimary(facts[0]!, w, policy);
  for (const f of facts) {
    w = observeStandby(w, f, policy);
    action = decidePrimary(f, w, policy);
  }
  return { action, watch: w };
}

const times = (n: number, f: PrimaryFacts) => Array.from({ length: n }, () => f);

describe('decidePrimary', () => {
  it.each<[string, PrimaryFacts[], PrimaryPolicy, string, RegExp]>([
    ['healthy sync standby: nothing to do', times(5, healthy()), sync, 'none', /streaming synchronously/],
    [
      'quorum counts as synchronous',
      times(5, healthy({ row: { state: 'streaming', syncState: 'quorum' } })),
      sync,
      'none',
      /streaming synchronously/,
    ],
    [
      'standby gone 2/3: not yet',
      times(2, healthy({ standbyReachable: false, row: null, standby: null })),
      sync,
      'none',
      /unreachable 2\/3/,
    ],
    [
      'standby gone 3/3: degrade',
      times(3, healthy({ standbyReachable: false, row: null, standby: null, standbyError: 'refused' })),
      sync,
      'degrade',
      /^degrading synchronous replication: standby server unreachable \(refused\) 3\/3/,
    ],
    [
      'server answers but no streaming row: degrade',
      times(3, healthy({ row: null })),
      sync,
      'degrade',
      /no pg_stat_replication row/,
    ],
    [
      'row in catchup: degrade',
      times(3, healthy({ row: { state: 'catchup', syncState: 'potential' } })),
      sync,
      'degrade',
      /state catchup/,
    ],
    [
      'streaming but async: degrade',
      times(3, healthy({ row: { state: 'streaming', syncState: 'async' } })),
      sync,
      'degrade',
      /not synchronous \(sync_state async/,
    ],
    [
      'replay paused on the standby: degrade',
      times(3, healthy({ standby: { replayLsn: 500n, receiveLsn: 900n, paused: true } })),
      sync,
      'degrade',
      /replay paused/,
    ],
    [
      'async pair never degrades',
      times(9, healthy({ standbyReachable: false, row: null, standby: null })),
      { ...sync, syncStandbyNames: '' },
      'none',
      /asynchronous pair/,
    ],
    [
      'keeper paused never degrades',
      times(9, healthy({ keeperPaused: true, standbyReachable: false, row: null })),
      sync,
      'none',
      /paused/,
    ],
    [
      'degraded + standby back with small lag: restore',
      [healthy({ currentSyncNames: '', row: { state: 'streaming', syncState: 'async' }, primaryLsn: 1500n })],
      sync,
      'restore',
      /restoring synchronous replication: standby streaming, lag 500 B/,
    ],
    [
      'degraded + standby back with big lag: keep degraded',
      [
        healthy({
          currentSyncNames: '',
          row: { state: 'streaming', syncState: 'async' },
          primaryLsn: 900_000n,
        }),
      ],
      sync,
      'none',
      /catching up: lag .* > syncRestoreLag/,
    ],
    [
      'degraded + standby still gone: keep degraded',
      [healthy({ currentSyncNames: '', standbyReachable: false, row: null, standby: null })],
      sync,
      'none',
      /degraded, not restoring: standby server unreachable/,
    ],
    [
      'the peer was promoted: never degrade (it would acknowledge commits the new primary never sees)',
      times(5, healthy({ standbyReachable: false, peerIsPrimary: true, row: null, standby: null })),
      sync,
      'none',
      /peer answers as a primary: never degrading/,
    ],
    [
      'degraded + replay paused: keep degraded',
      [
        healthy({
          currentSyncNames: '',
          row: { state: 'streaming', syncState: 'async' },
          standby: { replayLsn: 1000n, receiveLsn: 1000n, paused: true },
        }),
      ],
      sync,
      'none',
      /replay paused/,
    ],
  ])('%s', (_name, facts, policy, kind, reason) => {
    const { action } = run(facts, policy);
    expect(action.kind).toBe(kind);
    expect(action.reason).toMatch(reason);
  });

  it('restores the configured names', () => {
    const { action } = run([
      healthy({ currentSyncNames: '', row: { state: 'streaming', syncState: 'async' } }),
    ]);
    expect(action).toMatchObject({ kind: 'restore', names: 'FIRST 1 (b)' });
  });

  it('a stall is replay not advancing while the primary advances, for `failures` iterations', () => {
    const stuck = (primaryLsn: bigint) =>
      healthy({ primaryLsn, standby: { replayLsn: 1000n, receiveLsn: 1000n, paused: false } });
    // First iteration only sets the baseline; the next three see no progress while behind.
    const { action, watch } = run([stuck(1000n), stuck(2000n), stuck(3000n), stuck(4000n)]);
    expect(watch.consecutiveFailures).toBe(3);
    expect(action.kind).toBe('degrade');
    expect(action.reason).toMatch(/replay stalled/);
  });

  it('a slow but advancing standby is not stalled', () => {
    const slow = (replay: bigint, primaryLsn: bigint) =>
      healthy({ primaryLsn, standby: { replayLsn: replay, receiveLsn: primaryLsn, paused: false } });
    const { action, watch } = run([
      slow(100n, 5000n),
      slow(200n, 6000n),
      slow(300n, 7000n),
      slow(400n, 8000n),
    ]);
    expect(watch.consecutiveFailures).toBe(0);
    expect(action.kind).toBe('none');
  });

  it('an idle pair (nothing to replay) is not stalled', () => {
    const { watch } = run(times(6, healthy()));
    expect(watch.consecutiveFailures).toBe(0);
  });

  it('a blip shorter than `failures` resets the counter', () => {
    const down = healthy({ standbyReachable: false, row: null, standby: null });
    const { action, watch } = run([down, down, healthy(), down, down]);
    expect(watch.consecutiveFailures).toBe(2);
    expect(action.kind).toBe('none');
  });
});
