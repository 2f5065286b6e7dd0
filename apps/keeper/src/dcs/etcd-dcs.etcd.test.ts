import { EtcdCluster } from '@pgfleet/sandbox';
import { parseLsn } from '@pgfleet/wal';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../clock.js';
import { DEFAULT_TAGS } from '../cluster-types.js';
import type { Dcs } from './dcs.js';
import { DcsError, DcsErrorCode } from './errors.js';
import { createEtcdDcs, type EtcdDcs } from './etcd-dcs.js';
import type { MemberState } from './records.js';

const logger = pino({ level: process.env.KEEPER_TEST_LOG ? 'debug' : 'silent' });
const TTL = 2;

let etcd: EtcdCluster;
const opened: Dcs[] = [];
let clusterSeq = 0;

/** A keeper's DCS client for `member`, reaching etcd through its own proxies (party `keeper-<member>`). */
function dcsFor(cluster: string, member: string, opts: { timeoutMs?: number } = {}): EtcdDcs {
  const dcs = createEtcdDcs({
    endpoints: etcd.endpoints({ from: `keeper-${member}` }),
    prefix: '/pgfleet-test',
    cluster,
    memberName: member,
    ttlSeconds: TTL,
    requestTimeoutMs: opts.timeoutMs ?? 3_000,
    logger,
    clock: systemClock,
  });
  opened.push(dcs);
  return dcs;
}

const newCluster = () => `c${++clusterSeq}-${process.pid}`;

function standbyState(overrides: Partial<MemberState> = {}): MemberState {
  return {
    role: 'standby',
    state: 'streaming',
    timeline: 3,
    walLsn: null,
    receivedLsn: parseLsn('0/3000148'),
    replayedLsn: parseLsn('0/3000060'),
    lagBytes: 232,
    streaming: true,
    upstream: 'a',
    fenced: false,
    tags: { noFailover: false, failoverPriority: 2 },
    keeperUrl: 'http://127.0.0.1:8009',
    conninfo: 'host=127.0.0.1 port=5433 user=postgres password=s3cret-pw dbname=postgres',
    ...overrides,
  };
}

async function expectDcsError(p: Promise<unknown>, code: string): Promise<DcsError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DcsError);
  expect((err as DcsError).code).toBe(code);
  return err as DcsError;
}

beforeAll(async () => {
  etcd = await EtcdCluster.start({ name: 'keeper-dcs' });
});

afterAll(async () => {
  for (const d of opened) await d.close().catch(() => {});
  await etcd?.destroy();
});

describe('leader election on etcd', () => {
  it('lets exactly one of three simultaneous contenders win, round after round', async () => {
    const cluster = newCluster();
    const contenders = ['a', 'b', 'c'].map((m) => dcsFor(cluster, m));
    for (let round = 0; round < 5; round++) {
      const results = await Promise.all(contenders.map((d) => d.acquireLeader()));
      const winners = results.flatMap((r, i) => (r.won ? [contenders[i]!.memberName] : []));
      expect(winners).toHaveLength(1);
      for (const r of results) if (!r.won) expect(r).toMatchObject({ holder: winners[0], reason: 'held' });
      const snap = await contenders[0]!.readCluster();
      expect(snap.leader?.name).toBe(winners[0]);
      const winner = contenders.find((d) => d.memberName === winners[0])!;
      expect(await winner.releaseLeader()).toBe(true);
      expect((await winner.readCluster()).leader).toBeNull();
    }
  });

  it('keeps the key while the leader renews, and another takes over only after its lease lapsed', async () => {
    const cluster = newCluster();
    const a = dcsFor(cluster, 'a');
    const b = dcsFor(cluster, 'b');
    const won = await a.acquireLeader();
    expect(won.won).toBe(true);
    // Renewing every 500 ms for 2 × TTL: b never wins.
    let heldUntil = won.won ? won.heldUntil : 0;
    const until = systemClock.now() + 2 * TTL * 1000;
    while (systemClock.now() < until) {
      const r = await a.renewLeader();
      expect(r.held).toBe(true);
      if (r.held) {
        expect(r.heldUntil).toBeGreaterThanOrEqual(heldUntil);
        heldUntil = r.heldUntil;
      }
      expect(await b.acquireLeader()).toMatchObject({ won: false, holder: 'a' });
      await systemClock.sleep(500);
    }
    // a stops renewing (its keeper froze): b polls until it wins.
    let bWonAt = 0;
    while (bWonAt === 0) {
      const r = await b.acquireLeader();
      if (r.won) bWonAt = systemClock.now();
      else await systemClock.sleep(100);
    }
    // The safety property the fencing relies on: nobody wins before the old leader's heldUntil.
    expect(bWonAt).toBeGreaterThanOrEqual(heldUntil);
    expect(bWonAt - heldUntil).toBeLessThan(10_000);
    expect(await a.renewLeader()).toMatchObject({ held: false, holder: 'b', reason: 'lease-expired' });
    expect(await a.writeSync({ leader: 'a', voters: ['b'], minAcks: 1 })).toBe(false);
  });

  it('lets a restarted keeper take over its own leader key at once, and nobody else', async () => {
    const cluster = newCluster();
    const before = dcsFor(cluster, 'a');
    const b = dcsFor(cluster, 'b');
    expect((await before.acquireLeader()).won).toBe(true);
    // The keeper restarts: a new process, a new session, the old lease still alive in etcd.
    const after = dcsFor(cluster, 'a');
    expect(await after.acquireLeader()).toMatchObject({ won: false, holder: 'a', reason: 'held' });
    const renewed = await after.renewLeader();
    expect(renewed.held).toBe(true);
    const snap = await b.readCluster();
    expect(snap.leader?.name).toBe('a');
    expect(await b.acquireLeader()).toMatchObject({ won: false, holder: 'a' });
    // The old session no longer holds it: its lease is not the key's any more.
    expect(await before.writeSync({ leader: 'a', voters: ['b'], minAcks: 1 })).toBe(false);
    expect(await after.writeSync({ leader: 'a', voters: ['b'], minAcks: 1 })).toBe(true);
    // Another member never adopts a key that names someone else.
    expect(await b.renewLeader()).toMatchObject({ held: false, holder: 'a', reason: 'taken' });
  });

  it('refuses the key when the sync record changed since the decision read it', async () => {
    const cluster = newCluster();
    const a = dcsFor(cluster, 'a');
    const b = dcsFor(cluster, 'b');
    expect((await a.acquireLeader()).won).toBe(true);
    expect(await a.writeSync({ leader: 'a', voters: ['b', 'c'], minAcks: 1 })).toBe(true);
    const seen = await b.readCluster();
    expect(seen.sync).toEqual({ leader: 'a', voters: ['b', 'c'], minAcks: 1 });
    expect(await a.writeSync({ leader: 'a', voters: ['c'], minAcks: 1 })).toBe(true);
    expect(await a.releaseLeader()).toBe(true);
    expect(await b.acquireLeader({ expectSyncRevision: seen.syncRevision })).toEqual({
      won: false,
      holder: null,
      reason: 'sync-changed',
    });
    const fresh = await b.readCluster();
    expect(await b.acquireLeader({ expectSyncRevision: fresh.syncRevision })).toMatchObject({ won: true });
  });

  it('lets only the leader write the sync record and the failsafe member list', async () => {
    const cluster = newCluster();
    const a = dcsFor(cluster, 'a');
    const b = dcsFor(cluster, 'b');
    await b.touchMember(standbyState());
    expect((await a.acquireLeader()).won).toBe(true);
    expect(await b.writeSync({ leader: 'b', voters: ['a'], minAcks: 1 })).toBe(false);
    expect(await b.writeFailsafe({ b: 'http://127.0.0.1:1' })).toBe(false);
    const members = { a: 'http://127.0.0.1:8008', b: 'http://127.0.0.1:8009', c: 'http://127.0.0.1:8010' };
    expect(await a.writeFailsafe(members)).toBe(true);
    expect(await a.writeSync({ leader: 'a', voters: ['c', 'b'], minAcks: 1 })).toBe(true);
    const snap = await b.readCluster();
    expect(snap.failsafe).toEqual(members);
    expect(snap.sync).toEqual({ leader: 'a', voters: ['b', 'c'], minAcks: 1 });
  });
});

describe('watching the leader key', () => {
  it('wakes a waiting standby as soon as the leader key is released', async () => {
    const cluster = newCluster();
    const a = dcsFor(cluster, 'a');
    const b = dcsFor(cluster, 'b');
    expect((await a.acquireLeader()).won).toBe(true);
    const snap = await b.readCluster();
    let releasedAt = 0;
    setTimeout(() => {
      releasedAt = performance.now();
      void a.releaseLeader();
    }, 300);
    const started = performance.now();
    expect(await b.waitForLeaderChange({ afterRevision: snap.revision, timeoutMs: 10_000 })).toBe('changed');
    expect(releasedAt).toBeGreaterThan(started);
    expect(performance.now() - releasedAt).toBeLessThan(1_500);
  });

  it('reports a change that happened between the read and the wait', async () => {
    const cluster = newCluster();
    const a = dcsFor(cluster, 'a');
    const b = dcsFor(cluster, 'b');
    const snap = await b.readCluster();
    expect((await a.acquireLeader()).won).toBe(true);
    const started = performance.now();
    expect(await b.waitForLeaderChange({ afterRevision: snap.revision, timeoutMs: 10_000 })).toBe('changed');
    expect(performance.now() - started).toBeLessThan(1_500);
  });

  it('ignores other keys and times out when the leader key stays put', async () => {
    const cluster = newCluster();
    const a = dcsFor(cluster, 'a');
    const b = dcsFor(cluster, 'b');
    expect((await a.acquireLeader()).won).toBe(true);
    const snap = await b.readCluster();
    const touching = setInterval(
      () => void a.touchMember(standbyState({ lagBytes: Math.floor(Math.random() * 1e6) })),
      100,
    );
    try {
      const started = performance.now();
      expect(await b.waitForLeaderChange({ afterRevision: snap.revision, timeoutMs: 1_000 })).toBe('timeout');
      expect(performance.now() - started).toBeGreaterThanOrEqual(950);
    } finally {
      clearInterval(touching);
    }
    expect((await b.readCluster()).members.length).toBe(1);
  });

  it('times out, not hangs, when the watcher is partitioned from etcd', async () => {
    const cluster = newCluster();
    const b = dcsFor(cluster, 'b');
    const snap = await b.readCluster();
    etcd.partition('keeper-b');
    try {
      const started = performance.now();
      expect(await b.waitForLeaderChange({ afterRevision: snap.revision, timeoutMs: 800 })).toBe('timeout');
      expect(performance.now() - started).toBeLessThan(2_000);
    } finally {
      etcd.heal('keeper-b');
    }
  });
});

describe('etcd unreachable', () => {
  it('gives a partitioned keeper DCS_UNAVAILABLE within its timeout while the others carry on', async () => {
    const cluster = newCluster();
    const a = dcsFor(cluster, 'a', { timeoutMs: 800 });
    const b = dcsFor(cluster, 'b');
    expect((await a.acquireLeader()).won).toBe(true);
    etcd.partition('keeper-a');
    try {
      for (const op of [() => a.renewLeader(), () => a.readCluster(), () => a.touchMember(standbyState())]) {
        const started = performance.now();
        const err = await expectDcsError(op(), DcsErrorCode.DCS_UNAVAILABLE);
        const took = performance.now() - started;
        expect(took).toBeGreaterThanOrEqual(700);
        expect(took).toBeLessThan(2_000);
        expect(err.message).toMatch(/did not answer/);
      }
      // b still reaches etcd and wins once a's lease has lapsed.
      let won = false;
      const deadline = systemClock.now() + 15_000;
      while (!won && systemClock.now() < deadline) {
        won = (await b.acquireLeader()).won;
        if (!won) await systemClock.sleep(100);
      }
      expect(won).toBe(true);
    } finally {
      etcd.heal('keeper-a');
    }
    expect(await a.renewLeader()).toMatchObject({ held: false, holder: 'b' });
  });

  it('stops a call at once when its AbortSignal fires (DCS_ABORTED), not at its timeout', async () => {
    const a = dcsFor(newCluster(), 'a', { timeoutMs: 10_000 });
    etcd.partition('keeper-a');
    try {
      const ctl = new AbortController();
      setTimeout(() => ctl.abort(new Error('shutdown')), 200);
      const started = performance.now();
      await expectDcsError(a.readCluster({ signal: ctl.signal }), DcsErrorCode.DCS_ABORTED);
      expect(performance.now() - started).toBeLessThan(1_500);
    } finally {
      etcd.heal('keeper-a');
    }
  });

  it('reports DCS_UNAVAILABLE, not a stale answer, when etcd has lost its quorum', async () => {
    const cluster = newCluster();
    const a = dcsFor(cluster, 'a', { timeoutMs: 1_500 });
    expect((await a.acquireLeader()).won).toBe(true);
    await etcd.kill('etcd2');
    await etcd.kill('etcd3');
    try {
      await expectDcsError(a.readCluster(), DcsErrorCode.DCS_UNAVAILABLE);
      await expectDcsError(a.renewLeader(), DcsErrorCode.DCS_UNAVAILABLE);
    } finally {
      await etcd.restart('etcd2', { waitHealthy: false });
      await etcd.restart('etcd3', { waitHealthy: false });
      await etcd.waitHealthy();
    }
  });
});

describe('cluster state on etcd', () => {
  it('round-trips member keys, without the password, and drops them when the session lapses', async () => {
    const cluster = newCluster();
    const b = dcsFor(cluster, 'b');
    const c = dcsFor(cluster, 'c');
    const state = standbyState();
    const session = await b.touchMember(state);
    expect(session.heldUntil).toBeGreaterThan(systemClock.now());
    await c.touchMember(standbyState({ tags: { ...DEFAULT_TAGS, noFailover: true }, upstream: 'b' }));
    const snap = await c.readCluster();
    expect(snap.members.map((m) => m.name)).toEqual(['b', 'c']);
    const got = snap.members[0]!;
    expect(got).toMatchObject({
      name: 'b',
      role: 'standby',
      timeline: 3,
      receivedLsn: parseLsn('0/3000148'),
      replayedLsn: parseLsn('0/3000060'),
      lagBytes: 232,
      streaming: true,
      upstream: 'a',
      tags: { noFailover: false, failoverPriority: 2 },
      keeperUrl: 'http://127.0.0.1:8009',
      lease: session.lease,
    });
    expect(got.conninfo).toBe('host=127.0.0.1 port=5433 user=postgres dbname=postgres');
    expect(JSON.stringify(snap, (_k, v) => (typeof v === 'bigint' ? String(v) : v))).not.toContain(
      's3cret-pw',
    );
    expect(snap.members[1]!.tags.noFailover).toBe(true);
    // b's keeper stops: its member key goes with its lease, c's stays while c touches it.
    const deadline = systemClock.now() + 15_000;
    let names: string[] = [];
    while (systemClock.now() < deadline) {
      await c.touchMember(standbyState({ state: 'streaming', lagBytes: 0 }));
      names = (await c.readCluster()).members.map((m) => m.name);
      if (!names.includes('b')) break;
      await systemClock.sleep(250);
    }
    expect(names).toEqual(['c']);
  });

  it('skips, and names, a member key holding something that is not a member record', async () => {
    const cluster = newCluster();
    const a = dcsFor(cluster, 'a');
    await a.touchMember(standbyState());
    const res = await fetch(`${etcd.endpoints()[0]}/v3/kv/put`, {
      method: 'POST',
      body: JSON.stringify({
        key: Buffer.from(`${a.keyPrefix}members/zz`).toString('base64'),
        value: Buffer.from('{"role":"boss"}').toString('base64'),
      }),
    });
    expect(res.ok).toBe(true);
    const snap = await a.readCluster();
    expect(snap.members.map((m) => m.name)).toEqual(['a']);
    expect(snap.invalid).toEqual([
      { key: `${a.keyPrefix}members/zz`, reason: expect.stringMatching(/role/) },
    ]);
  });

  it('round-trips the timeline history, appended by the leader only and once per timeline', async () => {
    const cluster = newCluster();
    const a = dcsFor(cluster, 'a');
    const b = dcsFor(cluster, 'b');
    expect(await a.appendHistory(entry(2, 'a', null))).toBeNull();
    expect((await a.acquireLeader()).won).toBe(true);
    expect(await a.appendHistory(entry(2, 'a', null))).toHaveLength(1);
    expect(await a.appendHistory(entry(2, 'a', null))).toHaveLength(1);
    expect(await b.appendHistory(entry(3, 'b', 'a'))).toBeNull();
    expect(await a.releaseLeader()).toBe(true);
    expect((await b.acquireLeader()).won).toBe(true);
    expect(await b.appendHistory(entry(3, 'b', 'a'))).toHaveLength(2);
    const snap = await a.readCluster();
    expect(snap.history).toEqual([entry(2, 'a', null), entry(3, 'b', 'a')]);
  });

  it('shows a pause set by one keeper to every keeper, and merges concurrent config changes', async () => {
    const cluster = newCluster();
    const [a, b, c] = ['a', 'b', 'c'].map((m) => dcsFor(cluster, m)) as [EtcdDcs, EtcdDcs, EtcdDcs];
    expect((await b.readCluster()).config.paused).toBe(false);
    await a.updateConfig((cfg) => ({ ...cfg, paused: true }));
    for (const d of [a, b, c]) expect((await d.readCluster()).config.paused).toBe(true);
    // Two writers at once: compare-and-swap keeps both changes.
    await Promise.all([
      b.updateConfig((cfg) => ({ ...cfg, syncCount: 2 })),
      c.updateConfig((cfg) => ({ ...cfg, failsafeMode: true })),
    ]);
    expect((await a.readCluster()).config).toEqual({ paused: true, syncCount: 2, failsafeMode: true });
    await c.updateConfig((cfg) => ({ ...cfg, paused: false }));
    expect((await b.readCluster()).config.paused).toBe(false);
  });
});

function entry(timeline: number, leader: string, previousLeader: string | null) {
  return {
    timeline,
    switchLsn: timeline > 2 ? parseLsn(`0/${(timeline * 0x1000000).toString(16).toUpperCase()}`) : null,
    reason: previousLeader ? `failover: ${previousLeader} unreachable` : 'bootstrap',
    at: '2026-01-01T00:00:00.000Z',
    leader,
    previousLeader,
  };
}
