import { describe, expect, it } from 'vitest';
import { type PrimaryFacts, planNodeHa, type StandbyFacts } from './readiness.js';

const NOW = new Date('2025-01-01T00:00:00Z');

function primary(over: Partial<PrimaryFacts> = {}): PrimaryFacts {
  return {
    server: 'a1',
    major: 17,
    standbySlots: [{ slot: 'a2', active: true, lagBytes: 0 }],
    outSlots: [
      { slot: 'pgfleet_a_b', exists: true, failover: true, publication: true, state: 'live' },
      { slot: 'pgfleet_a_c', exists: true, failover: true, publication: true, state: 'live' },
    ],
    synchronizedStandbySlots: 'a2',
    ...over,
  };
}

function standby(over: Partial<StandbyFacts> = {}): StandbyFacts {
  return {
    server: 'a2',
    slot: 'a2',
    error: null,
    inRecovery: true,
    settings: {
      syncReplicationSlots: true,
      hotStandbyFeedback: true,
      primarySlotName: 'a2',
      primaryConninfoHasDbname: true,
    },
    syncedSlots: [
      { slot: 'pgfleet_a_b', synced: true, temporary: false },
      { slot: 'pgfleet_a_c', synced: true, temporary: false },
    ],
    ...over,
  };
}

describe('planNodeHa', () => {
  it('17, every outgoing slot synced and persistent on a streaming standby: ready, nothing to do', () => {
    const p = planNodeHa('a', primary(), null, [standby()], NOW);
    expect(p.status).toMatchObject({ primary: 'a1', procedure: 'failover-slots', ready: true, reasons: [] });
    expect(p.status.standbys).toEqual([
      { server: 'a2', streaming: true, lagBytes: 0, ready: true, reasons: [] },
    ]);
    expect([p.setSynchronizedStandbySlots, p.logStandbySnapshot, p.resync, p.markLive]).toEqual([
      null,
      false,
      [],
      [],
    ]);
  });

  it.each<[string, Partial<StandbyFacts>, Partial<PrimaryFacts>, string]>([
    [
      'a synced slot still temporary (dropped at promotion)',
      {
        syncedSlots: [
          { slot: 'pgfleet_a_b', synced: true, temporary: true },
          { slot: 'pgfleet_a_c', synced: true, temporary: false },
        ],
      },
      {},
      'slot pgfleet_a_b is synchronized but not sync-ready yet (temporary)',
    ],
    [
      'a slot not synchronized at all',
      { syncedSlots: [{ slot: 'pgfleet_a_c', synced: true, temporary: false }] },
      {},
      'slot pgfleet_a_b is not synchronized yet',
    ],
    [
      'slot synchronization off',
      { settings: { ...standby().settings!, syncReplicationSlots: false } },
      {},
      'sync_replication_slots is off',
    ],
    [
      'no feedback',
      { settings: { ...standby().settings!, hotStandbyFeedback: false } },
      {},
      'hot_standby_feedback is off',
    ],
    [
      'another slot',
      { settings: { ...standby().settings!, primarySlotName: 'x' } },
      {},
      "primary_slot_name is 'x', not 'a2'",
    ],
    [
      'no dbname',
      { settings: { ...standby().settings!, primaryConninfoHasDbname: false } },
      {},
      'primary_conninfo names no dbname',
    ],
    [
      'not streaming',
      {},
      { standbySlots: [{ slot: 'a2', active: false, lagBytes: 4096 }] },
      'not streaming through slot a2',
    ],
    ['no physical slot', {}, { standbySlots: [] }, 'physical slot a2 does not exist on a1'],
    ['unreachable', { error: 'connect to x: refused' }, {}, 'unreachable: connect to x: refused'],
    ['a second primary', { inRecovery: false }, {}, 'is not a standby (a second primary?)'],
    [
      'an outgoing slot that is not a failover slot',
      {},
      {
        outSlots: [
          { slot: 'pgfleet_a_b', exists: true, failover: false, publication: true, state: 'live' },
          { slot: 'pgfleet_a_c', exists: true, failover: true, publication: true, state: 'live' },
        ],
      },
      'slot pgfleet_a_b on a1 is not a failover slot',
    ],
  ])('17, %s: not ready, says why', (_what, s, p, reason) => {
    const plan = planNodeHa('a', primary(p), null, [standby(s)], NOW);
    expect(plan.status.ready).toBe(false);
    expect(plan.status.standbys[0]?.reasons).toContain(reason);
    expect(plan.status.reasons).toContain('no standby is ready to take over');
  });

  it('17: a temporary synced slot asks for a standby snapshot (it becomes sync-ready sooner)', () => {
    const s = standby({ syncedSlots: [{ slot: 'pgfleet_a_b', synced: true, temporary: true }] });
    expect(planNodeHa('a', primary(), null, [s], NOW).logStandbySnapshot).toBe(true);
  });

  it.each([
    ['unset, standby slot exists', '', [{ slot: 'a2', active: true, lagBytes: 0 }], 'a2'],
    ['names a slot that is gone (a node alone after a failover)', 'a1', [], ''],
    ['already right, other spelling', ' "a2" ', [{ slot: 'a2', active: true, lagBytes: 0 }], null],
    [
      'two standbys',
      'a3',
      [
        { slot: 'a3', active: true, lagBytes: 0 },
        { slot: 'a2', active: false, lagBytes: null },
      ],
      'a2,a3',
    ],
  ])('17: synchronized_standby_slots %s → %j', (_w, current, slots, want) => {
    expect(
      planNodeHa('a', primary({ synchronizedStandbySlots: current, standbySlots: slots }), null, [], NOW)
        .setSynchronizedStandbySlots,
    ).toBe(want);
  });

  it('15: ready when the standby streams; the procedure is the re-sync; synchronized_standby_slots is not touched', () => {
    const p = planNodeHa(
      'a',
      primary({
        major: 15,
        synchronizedStandbySlots: null,
        outSlots: [{ slot: 'pgfleet_a_b', exists: true, failover: null, publication: true, state: 'live' }],
      }),
      null,
      [standby({ settings: null, syncedSlots: [] })],
      NOW,
    );
    expect(p.status).toMatchObject({ procedure: 'resync', ready: true });
    expect(p.setSynchronizedStandbySlots).toBeNull();
  });

  it.each<
    [string, PrimaryFacts['outSlots'][number], { resync: string[]; markLive: string[]; reason?: string }]
  >([
    [
      'seen before and lost in the failover: re-create',
      { slot: 's', exists: false, failover: null, publication: true, state: 'live' },
      { resync: ['s'], markLive: [] },
    ],
    [
      'being re-created (a crashed re-sync): again',
      { slot: 's', exists: true, failover: null, publication: true, state: 'pending' },
      { resync: ['s'], markLive: [] },
    ],
    [
      're-created before, lost again',
      { slot: 's', exists: false, failover: null, publication: true, state: 'done' },
      { resync: ['s'], markLive: [] },
    ],
    [
      'exists, never recorded: record it',
      { slot: 's', exists: true, failover: null, publication: true, state: null },
      { resync: [], markLive: ['s'] },
    ],
    [
      'never existed (init not run or half-way): leave it to init',
      { slot: 's', exists: false, failover: null, publication: true, state: null },
      { resync: [], markLive: [], reason: 'slot s does not exist (run pgfleet-mm init)' },
    ],
    [
      'edge not set up (no publication): nothing',
      { slot: 's', exists: false, failover: null, publication: false, state: 'live' },
      { resync: [], markLive: [] },
    ],
  ])('outgoing slot %s', (_w, slot, want) => {
    const p = planNodeHa(
      'a',
      primary({ major: 15, outSlots: [slot] }),
      null,
      [standby({ settings: null })],
      NOW,
    );
    expect({ resync: p.resync, markLive: p.markLive }).toEqual({
      resync: want.resync,
      markLive: want.markLive,
    });
    if (want.reason) expect(p.status.reasons).toContain(want.reason);
    if (want.resync.length) expect(p.status.resyncPending).toEqual(want.resync);
  });

  it('no primary: not ready, the reason is the error', () => {
    const p = planNodeHa('a', null, 'node a: no keeper reports a primary (failover under way?)', [], NOW);
    expect(p.status).toMatchObject({
      primary: null,
      procedure: null,
      ready: false,
      reasons: ['node a: no keeper reports a primary (failover under way?)'],
    });
  });

  it('a node running alone after a failover is not failover-ready', () => {
    const p = planNodeHa('a', primary({ standbySlots: [] }), null, [], NOW);
    expect(p.status.ready).toBe(false);
    expect(p.status.reasons).toEqual(['no standby configured']);
  });
});
