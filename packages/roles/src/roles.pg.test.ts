import { connect, SqlState } from '@pgfleet/connection';
import { Sandbox, type SandboxNode } from '@pgfleet/sandbox';
import { lsnDiff, parseLsn } from '@pgfleet/wal';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  currentTimeline,
  detectRole,
  detectRoleOn,
  fence,
  isFenced,
  PromoteError,
  parseSyncStandbyNames,
  pauseReplay,
  promote,
  RoleError,
  readSyncStandbyNames,
  replayStatus,
  replicationStatus,
  resumeReplay,
  setSyncStandbyNames,
  syncPriority,
  unfence,
  walReceiverStatus,
} from './index.js';

// One sandbox for the whole file: primary a + streaming standby b. The tests run in order
// and build on each other (sync names, replay pause, fence, then kill a and promote b).
// The CI matrix picks the server with PGFLEET_PG_VERSION (default: the newest found).
const major = process.env.PGFLEET_PG_VERSION ? Number(process.env.PGFLEET_PG_VERSION) : undefined;
let sb: Sandbox;
let a: SandboxNode;
let b: SandboxNode;
let qa: pg.Client;
let qb: pg.Client;
const extra: pg.Client[] = [];

async function until<T>(
  what: string,
  fn: () => Promise<T | undefined | false>,
  timeoutMs = 15_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

beforeAll(async () => {
  sb = await Sandbox.create(major ? { major } : {});
  a = await sb.startNode('a');
  b = await sb.createStandby('b', a);
  qa = await connect(a.conninfo(), { applicationName: 'roles-test' });
  qb = await connect(b.conninfo(), { applicationName: 'roles-test' });
  await qa.query('CREATE TABLE roles_t (id int PRIMARY KEY, v text)');
});

afterAll(async () => {
  for (const c of [qa, qb, ...extra]) await c?.end().catch(() => {});
  await sb?.destroy();
});

describe('@pgfleet/roles on a primary + streaming standby', () => {
  it('detects the primary and the standby, both on timeline 1, unfenced', async () => {
    const ra = await detectRole(a.conninfo(), { timeoutMs: 5000 });
    const rb = await detectRole(b.conninfo(), { timeoutMs: 5000 });
    expect(ra).toMatchObject({ role: 'primary', timeline: 1, fenced: false });
    expect(rb).toMatchObject({ role: 'standby', timeline: 1, fenced: false });
    expect(Math.floor(ra.serverVersion! / 10000)).toBe(a.major);
    expect(ra.serverVersion).toBeGreaterThanOrEqual(150000);
    expect(typeof ra.lsn).toBe('bigint');
    expect(typeof rb.lsn).toBe('bigint');
    // the standby cannot be ahead of its primary
    expect(rb.lsn!).toBeLessThanOrEqual((await detectRoleOn(qa)).lsn!);
  });

  it('shows the standby streaming asynchronously in pg_stat_replication', async () => {
    // replay_lsn stays NULL until the standby's first status reply
    const streams = await until('b streaming', async () => {
      const s = await replicationStatus(qa);
      return s.find((x) => x.applicationName === 'b' && x.state === 'streaming' && x.replayLsn !== null) && s;
    });
    expect(streams).toHaveLength(1);
    const s = streams[0]!;
    expect(s.syncState).toBe('async');
    expect(s.syncPriority).toBe(0);
    expect(s.clientAddr).toBe('127.0.0.1');
    expect(s.replayLagBytes).not.toBeNull();
    expect(s.replayLagBytes!).toBeGreaterThanOrEqual(0n);
    expect(s.flushLsn).not.toBeNull();
    // nothing streams from the standby
    expect(await replicationStatus(qb)).toEqual([]);
  });

  it('reports the WAL receiver on the standby and none on the primary', async () => {
    const r = await until('receiver streaming', async () => {
      const w = await walReceiverStatus(qb);
      return w?.status === 'streaming' && w;
    });
    expect(r.slotName).toBe('b');
    expect(r.senderHost).toBe('127.0.0.1');
    expect(r.senderPort).toBeGreaterThan(0);
    expect(r.receivedTli).toBe(1);
    expect(r.receivedLsn).not.toBeNull();
    expect(r.lastMsgReceiptTime).toBeInstanceOf(Date);
    // A write on the primary is a message to the receiver: its age is measured from then.
    await qa.query("INSERT INTO roles_t VALUES (0, 'age')");
    const fresh = await until('a fresh message', async () => {
      const w = await walReceiverStatus(qb);
      return w !== null && w.lastMsgAgeMs !== null && w.lastMsgAgeMs < 1000 ? w : undefined;
    });
    expect(fresh.lastMsgAgeMs).toBeGreaterThanOrEqual(0);
    await qa.query('DELETE FROM roles_t WHERE id = 0');
    expect(await walReceiverStatus(qa)).toBeNull();
  });

  it('sets synchronous_standby_names, verified, and a commit succeeds with b as sync standby', async () => {
    await setSyncStandbyNames(qa, 'b', { timeoutMs: 5000 });
    expect(await readSyncStandbyNames(qa)).toBe('b');
    // a fresh session sees it too: it is the server's configuration, not ours
    expect((await a.query('SHOW synchronous_standby_names'))[0]).toEqual({ synchronous_standby_names: 'b' });
    const s = await until('b sync', async () =>
      (await replicationStatus(qa)).find((x) => x.syncState === 'sync'),
    );
    expect(s.applicationName).toBe('b');
    expect(s.syncPriority).toBe(syncPriority(parseSyncStandbyNames('b'), 'b'));
    await qa.query('SET synchronous_commit = on');
    await qa.query("INSERT INTO roles_t VALUES (1, 'sync')");
    // synchronous_commit = on: flushed on b when COMMIT returned (visible once replayed)
    const row = await until('row on b', async () => (await b.query('SELECT v FROM roles_t WHERE id = 1'))[0]);
    expect(row).toEqual({ v: 'sync' });
  });

  it("shows sync_state 'quorum' under ANY 1 (b)", async () => {
    await setSyncStandbyNames(qa, 'ANY 1 (b)', { timeoutMs: 5000 });
    expect(await readSyncStandbyNames(qa)).toBe('ANY 1 (b)');
    const s = await until('b quorum', async () =>
      (await replicationStatus(qa)).find((x) => x.syncState === 'quorum'),
    );
    expect(s.applicationName).toBe('b');
    expect(s.syncPriority).toBe(1);
    await qa.query("INSERT INTO roles_t VALUES (2, 'quorum')");
  });

  it('accepts and rejects exactly the values the server accepts and rejects', async () => {
    const values = [
      'a',
      'a, b',
      'FIRST 2 (a, b)',
      'any 1 (a,"b c")',
      '2 (a,b)',
      '*',
      '"any"',
      'anyone',
      '2',
      'keeper-b',
      'a b',
      'FIRST 0 (a)',
      'ANY (a)',
      '"a',
      '  ',
      'ANY 1 (a) b',
    ];
    for (const value of values) {
      let ours = true;
      try {
        parseSyncStandbyNames(value);
      } catch {
        ours = false;
      }
      // ALTER SYSTEM runs the parameter's check hook (the server's own parser) without applying.
      const server = await qa
        .query(`ALTER SYSTEM SET synchronous_standby_names = '${value.replaceAll("'", "''")}'`)
        .then(() => true)
        .catch(() => false);
      expect({ value, accepted: ours }).toEqual({ value, accepted: server });
    }
    await qa.query("ALTER SYSTEM SET synchronous_standby_names = 'ANY 1 (b)'");
  });

  it('refuses an invalid value before touching the server', async () => {
    const err = await setSyncStandbyNames(qa, 'keeper-b', { timeoutMs: 1000, node: 'a' }).catch((e) => e);
    expect(err).toBeInstanceOf(RoleError);
    expect(err.code).toBe('SYNC_NAMES_INVALID');
    expect(err.message).toContain('on a');
    expect(await readSyncStandbyNames(qa)).toBe('ANY 1 (b)');
    await setSyncStandbyNames(qa, '', { timeoutMs: 5000 });
    expect(await readSyncStandbyNames(qa)).toBe('');
  });

  it('reflects replay pause and resume in replayStatus', async () => {
    await pauseReplay(qb);
    await qa.query("INSERT INTO roles_t VALUES (3, 'while paused')");
    const primaryLsn = parseLsn((await qa.query('SELECT pg_current_wal_lsn()::text AS l')).rows[0].l);
    const paused = await until('received but not replayed', async () => {
      const st = await replayStatus(qb);
      return st.pauseState === 'paused' && st.receiveLsn !== null && st.receiveLsn >= primaryLsn && st;
    });
    expect(paused.replayPaused).toBe(true);
    expect(paused.replayLsn!).toBeLessThan(primaryLsn);
    expect(paused.lagBytes).toBe(lsnDiff(paused.receiveLsn!, paused.replayLsn!));
    expect(paused.lagBytes).toBeGreaterThan(0n);
    expect(await b.query('SELECT 1 FROM roles_t WHERE id = 3')).toEqual([]);

    await resumeReplay(qb);
    const resumed = await until('caught up', async () => {
      const st = await replayStatus(qb);
      return st.lagBytes === 0n && st.replayLsn! >= primaryLsn && st;
    });
    expect(resumed.replayPaused).toBe(false);
    expect(resumed.lastReplayAt).toBeInstanceOf(Date);
    expect(await b.query('SELECT v FROM roles_t WHERE id = 3')).toEqual([{ v: 'while paused' }]);
  });

  it('replay functions say clearly that the primary is not a standby', async () => {
    const err = await replayStatus(qa).catch((e) => e);
    expect(err).toBeInstanceOf(RoleError);
    expect(err.code).toBe('NOT_IN_RECOVERY');
  });

  it('fence makes writes fail with 25006, terminates open sessions and keeps the standby streaming', async () => {
    const victim = await connect(a.conninfo(), { applicationName: 'app' });
    victim.on('error', () => {});
    extra.push(victim);
    await victim.query('BEGIN');
    await victim.query("INSERT INTO roles_t VALUES (4, 'open transaction')");

    const res = await fence(qa, { reason: 'test', node: 'a' });
    expect(res.terminated).toBeGreaterThanOrEqual(1);
    expect(res.reason).toBe('test');
    await expect(victim.query('COMMIT')).rejects.toThrow();

    const err = await a.query("INSERT INTO roles_t VALUES (5, 'fenced')").catch((e) => e);
    expect(err.code).toBe(SqlState.READ_ONLY_SQL_TRANSACTION);
    expect(await isFenced(qa)).toBe(true);
    expect(await detectRole(a.conninfo(), { timeoutMs: 5000 })).toMatchObject({
      role: 'primary',
      fenced: true,
    });
    expect(await a.query('SELECT 1 FROM roles_t WHERE id IN (4, 5)')).toEqual([]);
    // walsenders are not client backends: b still streams
    expect((await replicationStatus(qa)).map((s) => s.applicationName)).toEqual(['b']);
  });

  it('unfence restores writes', async () => {
    await unfence(qa, { node: 'a' });
    expect(await isFenced(qa)).toBe(false);
    await a.query("INSERT INTO roles_t VALUES (6, 'unfenced')");
    expect(await detectRole(a.conninfo(), { timeoutMs: 5000 })).toMatchObject({
      role: 'primary',
      fenced: false,
    });
  });

  it("reports a paused (SIGSTOP) node as down with cause 'timeout' within the time limit", async () => {
    a.pause();
    try {
      const t0 = Date.now();
      const r = await detectRole(a.conninfo(), { timeoutMs: 500 });
      const took = Date.now() - t0;
      expect(r).toMatchObject({ role: 'down', downCause: 'timeout' });
      expect(took).toBeLessThan(2000);
    } finally {
      a.resume();
    }
  });

  it("reports a killed node as down with cause 'refused', naming the node but not the password", async () => {
    // everything up to here is on b, so promotion loses nothing
    const lsnA = (await detectRoleOn(qa)).lsn!;
    await until('b caught up', async () => ((await replayStatus(qb)).replayLsn ?? 0n) >= lsnA);
    await a.kill();
    const first = await detectRole(a.conninfo(), { timeoutMs: 2000 });
    // Under load a connection can still meet a dying child right after the postmaster's
    // exit ('reset'); once the port is closed it is 'refused'.
    expect(first.role).toBe('down');
    expect(['refused', 'reset']).toContain(first.downCause);
    const r = await until('refused', async () => {
      const x = await detectRole(a.conninfo(), { timeoutMs: 2000 });
      return x.downCause === 'refused' && x;
    });
    expect(r.role).toBe('down');
    expect(r.reason).toContain('connection refused');
    expect(r.reason).toContain(`127.0.0.1:${a.port}`);
    expect(r.reason).not.toContain(a.facts().password);
  });

  it('promotes the standby: timeline goes from 1 to 2, at once', async () => {
    expect(await currentTimeline(qb)).toBe(1);
    const { timeline } = await promote(qb, { waitSeconds: 30, node: 'b' });
    expect(timeline).toBe(2);
    // pg_control_checkpoint() may still say 1 here; currentTimeline must not
    expect(await currentTimeline(qb)).toBe(2);
    expect(await detectRole(b.conninfo(), { timeoutMs: 5000 })).toMatchObject({
      role: 'primary',
      timeline: 2,
    });
    await b.query("INSERT INTO roles_t VALUES (7, 'on b')");
    expect((await b.query('SELECT count(*)::int AS n FROM roles_t'))[0]).toEqual({ n: 5 });
  });

  it('refuses to promote a primary', async () => {
    const err = await promote(qb, { waitSeconds: 5, node: 'b' }).catch((e) => e);
    expect(err).toBeInstanceOf(PromoteError);
    expect(err.code).toBe('NOT_IN_RECOVERY');
    expect(err.message).toContain('b');
  });
});
