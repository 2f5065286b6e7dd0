import { connect } from '@pgfleet/connection';
import { testServer } from '@pgfleet/sandbox/vitest';
import { formatLsn, type Lsn, parseLsn } from '@pgfleet/wal';
import type pg from 'pg';
import pino from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { ConflictPolicy } from '../config.js';
import type { RecordedConflict } from '../conflict.js';
import { ConflictTail } from '../conflict-tail.js';
import type { PgoutputMessage, Tuple } from '../decode/messages.js';
import { encodePgoutput } from '../decode/pgoutput-encode.js';
import { originView, readOrigins } from '../edge-session.js';
import { createTestMetadata } from '../metadata-test-support.js';
import { makeEdge } from '../naming.js';
import { formatPgTimestamp } from '../pg-time.js';
import { APPLY_SESSION_SETTINGS, applySessionSql } from '../session-settings.js';
import { Applier, type ApplierFailure } from './applier.js';
import type { ApplyEvent, OutsideRecord } from './port.js';
import { setUpOrigin } from './progress-mark.js';
import { SeenTracker } from './seen.js';
import { loadTargetTable } from './target-table.js';

// The source is node s (rank 0), this server plays target t (rank 2); o (rank 1) is a third node.
const SCHEMA = 'mm_applier_pg';
const edge = makeEdge('s', 't');
const T0 = 900_000_000_000_000n; // µs since 2000: 2028-07-09, later than anything the server wrote

async function waitUntil(
  what: string,
  ok: () => Promise<boolean> | boolean,
  timeoutMs = 15_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('Applier on a real server', () => {
  let admin: pg.Client;
  let db: pg.Client | undefined;
  let next: bigint;
  const rel = (id: number, name: string, cols: Array<[string, number, boolean]>): PgoutputMessage => ({
    tag: 'relation',
    relationId: id,
    schema: SCHEMA,
    name,
    replicaIdentity: 'd',
    columns: cols.map(([n, oid, isKey]) => ({ name: n, typeOid: oid, typeMod: -1, isKey })),
  });
  const relations: PgoutputMessage[] = [
    rel(1, 'kv', [
      ['id', 23, true],
      ['v', 25, false],
    ]),
    rel(2, 'checked', [
      ['id', 23, true],
      ['n', 23, false],
    ]),
    rel(3, 'moved', [
      ['id', 20, true],
      ['v', 25, false],
    ]),
    rel(4, 'mail', [
      ['id', 23, true],
      ['email', 25, false],
    ]),
    rel(6, 'narrow', [
      ['id', 23, true],
      ['v', 25, false],
      ['c', 25, false],
      ['f', 25, false],
    ]),
  ];
  /** Fed only by the test about it: a relation the applier refuses pauses every test's applier. */
  const deferredRelation = rel(5, 'deferred', [
    ['id', 23, true],
    ['v', 25, false],
  ]);

  /** A source transaction: its changes between Begin and Commit, with LSNs past everything so far. */
  function tx(changes: PgoutputMessage[], opts: { ts?: bigint; origin?: string } = {}) {
    const finalLsn = next as Lsn;
    const endLsn = (next + 8n) as Lsn;
    next += 100n;
    const ts = opts.ts ?? T0 + next;
    const msgs: PgoutputMessage[] = [
      { tag: 'begin', finalLsn, commitTs: ts, xid: Number(next % 100_000n) },
      ...(opts.origin ? [{ tag: 'origin' as const, originLsn: 1n as Lsn, name: opts.origin }] : []),
      ...changes,
      { tag: 'commit', commitLsn: finalLsn, endLsn, commitTs: ts },
    ];
    return { finalLsn, endLsn, ts, msgs };
  }
  const ins = (relationId: number, t: Tuple): PgoutputMessage => ({ tag: 'insert', relationId, newTuple: t });
  const upd = (relationId: number, t: Tuple, key?: Tuple): PgoutputMessage => ({
    tag: 'update',
    relationId,
    key: key ?? null,
    old: null,
    newTuple: t,
  });
  const del = (relationId: number, key: Tuple): PgoutputMessage => ({
    tag: 'delete',
    relationId,
    key,
    old: null,
  });

  async function progress(): Promise<Lsn> {
    const { rows } = await admin.query(
      `SELECT coalesce(pg_replication_origin_progress($1, false), '0/0')::text AS l`,
      [edge.origin],
    );
    return parseLsn(rows[0].l);
  }

  /** A fresh apply session, as each edge session opens one (pg_temp objects and prepared names are per session). */
  async function applySession(): Promise<pg.Client> {
    await db?.end().catch(() => {});
    db = await connect(testServer().conninfo, { settings: APPLY_SESSION_SETTINGS });
    await db.query(applySessionSql('off'));
    await setUpOrigin(db, edge.origin);
    (db as unknown as { pipeline: boolean }).pipeline = true;
    return db;
  }

  async function makeApplier(opts: { policy?: ConflictPolicy; batchRows?: number; seen?: SeenTracker }) {
    await applySession();
    const startProgress = await progress();
    const tailed: RecordedConflict[] = [];
    const tail = new ConflictTail(edge.id, pino({ level: 'silent' }), (c) => tailed.push(c));
    await tail.start(admin);
    const events: ApplyEvent[] = [];
    const outside: OutsideRecord[] = [];
    let view: ReturnType<typeof originView> | null = null;
    const seen = opts.seen ?? new SeenTracker(0n, new Set(['s', 'o', 't']), new Map());
    const a = new Applier({
      edge,
      db: db as pg.Client,
      port: {
        loadTargetTable: (schema, table) => loadTargetTable(admin, schema, table),
        skipRequested: async () => false,
        recordOutside: async (r) => {
          outside.push(r);
        },
        report: (e) => events.push(e),
        pause: () => {},
        resume: () => {},
      },
      sourceRank: 0,
      policyFor: () => opts.policy ?? 'last_update_wins',
      deadLetter: 'pause_edge',
      batchRows: opts.batchRows ?? 1000,
      maxInFlightTransactions: 1000,
      startProgress,
      carefulCommitLsn: null,
      pausedOnCareful: false,
      deadLetterTx: null,
      seen,
      origins: () => view as NonNullable<typeof view>,
      logger: pino({ level: 'silent' }),
    });
    return {
      a,
      events,
      outside,
      async init() {
        const cfg = { nodes: ['s', 'o', 't'].map((name, rank) => ({ name, rank, conninfo: '' })) };
        view = originView(await readOrigins(admin), cfg as never, edge, seen.floor, 0);
        for (const m of relations) a.receive(encodePgoutput(m));
        await waitUntil('relations loaded', () => !a.inFlight() || a.hasFailed());
      },
      feed(msgs: PgoutputMessage[]) {
        for (const m of msgs) a.receive(encodePgoutput(m));
      },
      async settled() {
        await waitUntil('applied', async () => {
          a.committedThrough(await progress());
          return !a.inFlight() || a.hasFailed();
        });
        if (a.hasFailed()) {
          const f = await a.failed;
          throw new Error(`applier failed (${f.kind}): ${f.error.message}`);
        }
        // Origin progress moves inside the commit, before the transaction is visible to other
        // sessions: a query queued behind the apply's calls returns once they all have.
        await (db as pg.Client).query('SELECT 1');
      },
      /** Conflicts committed since the applier was made, as the edge reports them: `kind:resolution`. */
      async conflicts() {
        await tail.read(admin);
        return tailed.map((c) => `${c.kind}:${c.resolution}`);
      },
      /** Transactions reported applied, summed over the reports. */
      appliedTransactions: () => events.reduce((n, e) => n + (e.type === 'applied' ? e.transactions : 0), 0),
    };
  }

  /** Writes a row as if node `origin` had sent it (that origin set up, its commit time). */
  async function writeAs(origin: string, ts: bigint, sql: string): Promise<void> {
    const c = await connect(testServer().conninfo);
    try {
      await c.query('SET session_replication_role = replica');
      await c.query('SELECT pg_replication_origin_session_setup($1)', [origin]);
      await c.query('BEGIN');
      await c.query(sql);
      await c.query('SELECT pg_replication_origin_xact_setup($1::pg_lsn, $2::timestamptz)', [
        '0/1',
        formatPgTimestamp(ts),
      ]);
      await c.query('COMMIT');
    } finally {
      await c.end();
    }
  }

  beforeAll(async () => {
    const conninfo = testServer().conninfo;
    admin = await connect(conninfo);
    await createTestMetadata(admin);
    for (const o of ['pgfleet_s', 'pgfleet_o', 'pgfleet_o_writer'])
      await admin.query(
        'SELECT pg_replication_origin_create($1) WHERE NOT EXISTS (SELECT 1 FROM pg_replication_origin WHERE roname = $1)',
        [o],
      );
    await admin.query(`DELETE FROM pgfleet.conflicts WHERE edge = $1`, [edge.id]);
    await admin.query(`INSERT INTO pgfleet.edge_seen VALUES ($1, '{}') ON CONFLICT DO NOTHING`, [edge.id]);
    await admin.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE; CREATE SCHEMA ${SCHEMA};
      CREATE TABLE ${SCHEMA}.kv (id int PRIMARY KEY, v text);
      CREATE TABLE ${SCHEMA}.checked (id int PRIMARY KEY, n int CHECK (n >= 0));
      CREATE TABLE ${SCHEMA}.moved (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text);
      CREATE TABLE ${SCHEMA}.mail (id int PRIMARY KEY, email text UNIQUE);
      CREATE TABLE ${SCHEMA}.deferred (id int PRIMARY KEY DEFERRABLE, v text);
      CREATE DOMAIN ${SCHEMA}.code3 AS varchar(3);
      CREATE TABLE ${SCHEMA}.narrow (id int PRIMARY KEY, v varchar(3), c ${SCHEMA}.code3, f char(2))`);
  });

  beforeEach(async () => {
    next = (await progress()) + 1000n;
  });

  afterAll(async () => {
    await db?.end().catch(() => {});
    await admin?.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`).catch(() => {});
    await admin?.end();
  });

  /** `columns` of this edge's pgfleet.conflicts rows, in the order they were recorded. */
  const recordedConflicts = async (columns: string) =>
    (await admin.query(`SELECT ${columns} FROM pgfleet.conflicts c WHERE edge = $1 ORDER BY c.id`, [edge.id]))
      .rows;

  /** kv as `id=v` in key order. */
  const kvRows = async () => (await rows('kv')).map((r) => `${r.id}=${r.v}`);

  const rows = async (table: string) =>
    (await admin.query(`SELECT * FROM ${SCHEMA}.${table} ORDER BY id`)).rows as Array<
      Record<string, unknown>
    >;

  it('applies a run of transactions of mixed shapes, each its own transaction with the source commit time and origin', async () => {
    await admin.query(`TRUNCATE ${SCHEMA}.kv`);
    const h = await makeApplier({});
    await h.init();
    const txs = [
      tx([ins(1, ['1', 'a'])]),
      tx([ins(1, ['2', 'b']), ins(1, ['3', 'c']), ins(1, ['4', null])]),
      tx([upd(1, ['2', 'B']), del(1, ['3', null]), ins(1, ['5', 'e'])]),
      tx([upd(1, ['6', 'moved key'], ['4', null])]), // the key changes: 4 → 6
      tx([upd(1, ['1', 'A']), upd(1, ['1', 'AA'])]), // two changes of one key in one transaction
      tx([ins(1, ['7', 'g'])]),
    ];
    for (const t of txs) h.feed(t.msgs);
    await h.settled();
    expect(h.a.hasFailed()).toBe(false);
    expect(await kvRows()).toEqual(['1=AA', '2=B', '5=e', '6=moved key', '7=g']);
    const { rows: meta } = await admin.query(
      `SELECT t.id, t.xmin::text AS x, (pg_xact_commit_timestamp_origin(t.xmin)).timestamp AS ts, o.roname
         FROM ${SCHEMA}.kv t JOIN pg_replication_origin o ON o.roident = (pg_xact_commit_timestamp_origin(t.xmin)).roident ORDER BY id`,
    );
    expect(meta.every((r) => r.roname === edge.origin)).toBe(true);
    // Rows 2 and 5 were written by one source transaction, 7 by another: separate target transactions.
    const x = new Map(meta.map((r) => [r.id, r.x]));
    expect(x.get(2)).toBe(x.get(5));
    expect(x.get(7)).not.toBe(x.get(5));
    const { rows: ts } = await admin.query(
      `SELECT (pg_xact_commit_timestamp(xmin) = $1::timestamptz) AS same FROM ${SCHEMA}.kv WHERE id = 7`,
      [formatPgTimestamp(txs[5]?.ts as bigint)],
    );
    expect(ts).toEqual([{ same: true }]);
    expect(await progress()).toBe(txs[5]?.endLsn);
    expect(h.appliedTransactions()).toBe(6);
    expect(await h.conflicts()).toEqual([]);
  });

  it('decides raced rows in SQL, records them with both images, and leaves rows the source had seen alone', async () => {
    await admin.query(`TRUNCATE ${SCHEMA}.kv`);
    const seen = new SeenTracker(0n, new Set(['s', 'o', 't']), new Map());
    const h = await makeApplier({ seen });
    await h.init();
    // Rows 1 and 2 were last written by o at T0 + 50 (after the floor).
    await writeAs('pgfleet_o', T0 + 50n, `INSERT INTO ${SCHEMA}.kv VALUES (1, 'o1'), (2, 'o2'), (3, 'o3')`);
    // s updates row 1 without having seen o's version: a race; s's change is later, it wins.
    const raced = tx([upd(1, ['1', 's1'])], { ts: T0 + 60n });
    // s updates row 2 at an earlier time than o's version: a race that s loses.
    const lost = tx([upd(1, ['2', 's2'])], { ts: T0 + 40n });
    // s applied o's transaction (the echo), then updated row 3: no race, whatever the times.
    const echo = tx([ins(1, ['3', 'o3'])], { ts: T0 + 50n, origin: 'pgfleet_o' });
    const after = tx([upd(1, ['3', 's3'])], { ts: T0 + 45n });
    const missing = tx([upd(1, ['9', 'x']), del(1, ['8', null])], { ts: T0 + 70n });
    for (const t of [raced, lost, echo, after, missing]) h.feed(t.msgs);
    await h.settled();
    expect(h.a.hasFailed()).toBe(false);
    expect(await kvRows()).toEqual(['1=s1', '2=o2', '3=s3']);
    const c = await recordedConflicts(
      "key->>'id' AS id, kind, resolution, reason, local_row, remote_row, local_origin, remote_commit_lsn::text AS lsn",
    );
    expect(c).toEqual([
      {
        id: '1',
        kind: 'update_differs',
        resolution: 'apply',
        reason: 'remote change is later',
        local_row: { id: 1, v: 'o1' },
        remote_row: { id: '1', v: 's1' },
        local_origin: 'pgfleet_o',
        lsn: formatLsn(raced.finalLsn),
      },
      expect.objectContaining({
        id: '2',
        kind: 'update_differs',
        resolution: 'skip',
        reason: 'local change is later',
      }),
      expect.objectContaining({ id: '9', kind: 'update_missing', resolution: 'skip', local_row: null }),
      expect.objectContaining({ id: '8', kind: 'delete_missing', resolution: 'skip' }),
    ]);
    expect(await h.conflicts()).toEqual([
      'update_differs:apply',
      'update_differs:skip',
      'update_missing:skip',
      'delete_missing:skip',
    ]);
    // What s had seen is recorded with the transaction that followed the echo.
    const { rows: s } = await admin.query('SELECT seen FROM pgfleet.edge_seen WHERE edge = $1', [edge.id]);
    expect(s[0].seen.o).toBe(formatPgTimestamp(T0 + 50n));
    // Every conflicting transaction still committed on its own, with its position.
    expect(await progress()).toBe(missing.endLsn);
  });

  it('decides a raced row of a one-row-per-group transaction in place: the groups around it apply once, in the same transaction', async () => {
    await admin.query(`TRUNCATE ${SCHEMA}.kv`);
    await admin.query('DELETE FROM pgfleet.conflicts WHERE edge = $1', [edge.id]);
    const h = await makeApplier({});
    await h.init();
    // Rows 1 to 3 were last written by o at T0 + 50 (after the floor), unseen by s.
    await writeAs('pgfleet_o', T0 + 50n, `INSERT INTO ${SCHEMA}.kv VALUES (1, 'o1'), (2, 'o2'), (3, 'o3')`);
    // Later than o's versions: the update and the delete win; the inserts around them are no race.
    const won = tx([ins(1, ['10', 'a']), upd(1, ['1', 's1']), del(1, ['2', null]), ins(1, ['11', 'b'])], {
      ts: T0 + 60n,
    });
    // Earlier than o's version: the update loses, the insert after it still applies.
    const lost = tx([upd(1, ['3', 's3']), ins(1, ['12', 'c'])], { ts: T0 + 40n });
    for (const t of [won, lost]) h.feed(t.msgs);
    await h.settled();
    expect(await kvRows()).toEqual(['1=s1', '3=o3', '10=a', '11=b', '12=c']);
    const c = await recordedConflicts(
      "key->>'id' AS id, kind, resolution, local_row, remote_row, remote_commit_lsn::text AS lsn",
    );
    expect(c).toEqual([
      {
        id: '1',
        kind: 'update_differs',
        resolution: 'apply',
        local_row: { id: 1, v: 'o1' },
        remote_row: { id: '1', v: 's1' },
        lsn: formatLsn(won.finalLsn),
      },
      {
        id: '2',
        kind: 'delete_differs',
        resolution: 'apply',
        local_row: { id: 2, v: 'o2' },
        remote_row: null,
        lsn: formatLsn(won.finalLsn),
      },
      expect.objectContaining({
        id: '3',
        kind: 'update_differs',
        resolution: 'skip',
        lsn: formatLsn(lost.finalLsn),
      }),
    ]);
    // Each conflict reported once: nothing was decided twice.
    expect(await h.conflicts()).toEqual([
      'update_differs:apply',
      'delete_differs:apply',
      'update_differs:skip',
    ]);
    // One target transaction per source transaction, with its commit time.
    const { rows: meta } = await admin.query(
      `SELECT id, xmin::text AS x, pg_xact_commit_timestamp(xmin) = $1::timestamptz AS lost_ts
         FROM ${SCHEMA}.kv WHERE id IN (1, 10, 11, 12) ORDER BY id`,
      [formatPgTimestamp(T0 + 40n)],
    );
    expect(new Set(meta.slice(0, 3).map((r) => r.x)).size).toBe(1);
    expect(meta.map((r) => r.lost_ts)).toEqual([false, false, false, true]);
    expect(await progress()).toBe(lost.endLsn);
  });

  it('resolves insert_exists by the policy and overwrites a row whose identity ALWAYS value changes by moving it', async () => {
    await admin.query(`TRUNCATE ${SCHEMA}.kv, ${SCHEMA}.moved`);
    const h = await makeApplier({ policy: 'first_update_wins' });
    await h.init();
    await writeAs('pgfleet_o', T0 + 10n, `INSERT INTO ${SCHEMA}.kv VALUES (1, 'o-early'), (2, 'o-late')`);
    await writeAs(
      'pgfleet_o',
      T0 + 10n,
      `INSERT INTO ${SCHEMA}.moved (id, v) OVERRIDING SYSTEM VALUE VALUES (10, 'ten')`,
    );
    const t1 = tx([ins(1, ['1', 's-late'])], { ts: T0 + 20n });
    const t2 = tx([ins(1, ['2', 's-early']), ins(1, ['3', 's-new'])], { ts: T0 + 5n });
    // s moved row 10 to id 11 (UPDATE ... SET id = DEFAULT) after it had applied o's insert.
    const echo = tx([ins(3, ['10', 'ten'])], { ts: T0 + 10n, origin: 'pgfleet_o' });
    const move = tx([upd(3, ['11', 'eleven'], ['10', null])], { ts: T0 + 30n });
    for (const t of [t1, t2, echo, move]) h.feed(t.msgs);
    await h.settled();
    expect(h.a.hasFailed()).toBe(false);
    // first_update_wins: the earlier of the two inserts of a key wins.
    expect(await kvRows()).toEqual(['1=o-early', '2=s-early', '3=s-new']);
    const moved = (await rows('moved')).map((r) => `${r.id}=${r.v}`);
    if (moved.join() !== '11=eleven') {
      // Seen once in CI (not reproduced since): say how the move was judged.
      const { rows: mc } = await admin.query(
        `SELECT kind, resolution, reason, local_commit_ts::text, local_origin, remote_commit_ts::text FROM pgfleet.conflicts WHERE edge = $1 AND table_name = 'moved'`,
        [edge.id],
      );
      const { rows: ro } = await admin.query(
        'SELECT roident, roname FROM pg_replication_origin ORDER BY roident',
      );
      expect.fail(
        `moved: ${JSON.stringify(moved)}; conflicts ${JSON.stringify(mc)}; events ${JSON.stringify(h.events, (_k, v) => (typeof v === 'bigint' ? String(v) : v))}; origins ${JSON.stringify(ro)}`,
      );
    }
    const { rows: c } = await admin.query(
      `SELECT key->>'id' AS id, kind, resolution FROM pgfleet.conflicts c WHERE edge = $1 AND table_name = 'kv' AND policy = 'first_update_wins' ORDER BY c.id`,
      [edge.id],
    );
    expect(c).toEqual([
      { id: '1', kind: 'insert_exists', resolution: 'skip' },
      { id: '2', kind: 'insert_exists', resolution: 'apply' },
    ]);
  });

  it('meets an existing key with a plain insert without a new session: ON CONFLICT from then on, every transaction from it sent again once', async () => {
    await admin.query(`TRUNCATE ${SCHEMA}.kv, ${SCHEMA}.checked`);
    await admin.query(`DELETE FROM pgfleet.conflicts WHERE edge = $1`, [edge.id]);
    const h = await makeApplier({});
    await h.init();
    await writeAs('pgfleet_o', T0 + 10n, `INSERT INTO ${SCHEMA}.kv VALUES (1, 'o1')`);
    // Runs (one call each, pipelined): [kv 10, 11] [checked 10] [kv 12, 1, 13] [checked 11] [kv 14].
    const txs = [
      tx([ins(1, ['10', 's'])]),
      tx([ins(1, ['11', 's'])]),
      tx([ins(2, ['10', '10'])]),
      tx([ins(1, ['12', 's'])]),
      tx([ins(1, ['1', 's1'])], { ts: T0 + 20n }), // the key exists (o's row, older): insert_exists, applied
      tx([ins(1, ['13', 's'])]),
      tx([ins(2, ['11', '11'])]),
      tx([ins(1, ['14', 's'])]),
    ];
    for (const t of txs) h.feed(t.msgs);
    await h.settled();
    expect(h.a.hasFailed()).toBe(false);
    expect(await kvRows()).toEqual(['1=s1', '10=s', '11=s', '12=s', '13=s', '14=s']);
    expect((await rows('checked')).map((r) => r.id)).toEqual([10, 11]);
    expect(await recordedConflicts("key->>'id' AS id, kind, resolution")).toEqual([
      { id: '1', kind: 'insert_exists', resolution: 'apply' },
    ]);
    expect(await progress()).toBe(txs[7]?.endLsn);
    // Each transaction reported applied once: the ones sent again were not counted twice.
    expect(h.appliedTransactions()).toBe(8);
    // Row 1 carries the commit time of the transaction that wrote it, applied once.
    const { rows: ts } = await admin.query(
      `SELECT pg_xact_commit_timestamp(xmin) = $1::timestamptz AS same FROM ${SCHEMA}.kv WHERE id = 1`,
      [formatPgTimestamp(txs[4]?.ts as bigint)],
    );
    expect(ts).toEqual([{ same: true }]);
    // Later inserts of a key that exists resolve in place (ON CONFLICT), in the same session.
    const again = tx([ins(1, ['10', 'later'])], { ts: T0 + 900_000_000n });
    h.feed(again.msgs);
    await h.settled();
    expect(h.a.hasFailed()).toBe(false);
    expect((await rows('kv')).find((r) => r.id === 10)?.v).toBe('later');
  });

  it('a unique violation on another index than the key is not an existing key: replayed change by change', async () => {
    await admin.query(`TRUNCATE ${SCHEMA}.mail`);
    await admin.query(`INSERT INTO ${SCHEMA}.mail VALUES (1, 'a@example.org')`);
    const h = await makeApplier({});
    await h.init();
    const ok = tx([ins(4, ['2', 'b@example.org'])]);
    const bad = tx([ins(4, ['3', 'a@example.org'])]);
    const after = tx([ins(4, ['4', 'c@example.org'])]);
    for (const t of [ok, bad, after]) h.feed(t.msgs);
    const f: ApplierFailure = await h.a.failed;
    expect(f.kind).toBe('replay');
    expect(f.kind === 'replay' && f.commitLsn).toBe(bad.finalLsn);
    expect((await rows('mail')).map((r) => r.id)).toEqual([1, 2]);
    expect(await progress()).toBe(ok.endLsn);
  });

  it('pauses, writing nothing, at a table whose key is DEFERRABLE: a replica does not check it, so the key would be written twice', async () => {
    await admin.query(`TRUNCATE ${SCHEMA}.deferred`);
    const h = await makeApplier({});
    const before = await progress();
    await h.init();
    await writeAs('pgfleet_o', T0 + 50n, `INSERT INTO ${SCHEMA}.deferred VALUES (1, 'o1')`);
    // Without the check, this insert lands next to o's row: a replica skips the deferred recheck.
    const dup = tx([ins(5, ['1', 's1'])], { ts: T0 + 60n });
    h.feed([deferredRelation, ...dup.msgs]);
    await waitUntil('the applier to fail', () => h.a.hasFailed());
    const f = await h.a.failed;
    expect(f.kind).toBe('pause');
    expect(f.error.message).toMatch(
      /mm_applier_pg\.deferred on t: DEFERRABLE constraint "deferred_pkey": .* drop and re-create it without DEFERRABLE/,
    );
    expect((await rows('deferred')).map((r) => `${r.id}=${r.v}`)).toEqual(['1=o1']);
    expect(await progress()).toBe(before);
  });

  it('streams a large transaction group by group and still decides its conflicts in SQL', async () => {
    await admin.query(`TRUNCATE ${SCHEMA}.kv`);
    const h = await makeApplier({ batchRows: 5 });
    await h.init();
    await writeAs('pgfleet_o', T0 + 100n, `INSERT INTO ${SCHEMA}.kv VALUES (7, 'o7')`);
    const changes: PgoutputMessage[] = [];
    for (let i = 1; i <= 30; i++) changes.push(ins(1, [String(i), `s${i}`]));
    for (let i = 1; i <= 30; i += 3) changes.push(upd(1, [String(i), `u${i}`]));
    changes.push({ tag: 'truncate', relationIds: [2], cascade: false, restartIdentity: false });
    const big = tx(changes, { ts: T0 + 200n });
    h.feed(big.msgs);
    await h.settled();
    expect(h.a.hasFailed()).toBe(false);
    const r = await rows('kv');
    expect(r).toHaveLength(30);
    expect(r.find((x) => x.id === 7)?.v).toBe('u7'); // insert_exists applied (later), then the update
    expect(r.find((x) => x.id === 8)?.v).toBe('s8');
    // One target transaction (its groups ran in subtransactions, which share its commit time).
    const { rows: xs } = await admin.query(
      `SELECT count(DISTINCT pg_xact_commit_timestamp(xmin))::int AS n, min(pg_xact_commit_timestamp(xmin)) = $1::timestamptz AS same FROM ${SCHEMA}.kv`,
      [formatPgTimestamp(big.ts)],
    );
    expect(xs).toEqual([{ n: 1, same: true }]);
    expect(await progress()).toBe(big.endLsn);
  });

  it.each([
    { refusedBy: 'a CHECK constraint', value: '-1', code: '23514' },
    { refusedBy: 'the column type (not an int)', value: 'three', code: '22P02' },
  ])(
    'stops at a transaction the target refuses ($refusedBy), after committing the ones before it in the same call, and asks to replay that one',
    async ({ value, code }) => {
      await admin.query(`TRUNCATE ${SCHEMA}.checked`);
      const h = await makeApplier({});
      await h.init();
      // One shape, so one call: the refused transaction is third in it.
      const ok1 = tx([ins(2, ['1', '1'])]);
      const ok2 = tx([ins(2, ['2', '2'])]);
      const bad = tx([ins(2, ['3', value])]);
      const after = tx([ins(2, ['4', '4'])]);
      for (const t of [ok1, ok2, bad, after]) h.feed(t.msgs);
      const f: ApplierFailure = await h.a.failed;
      expect(f.kind).toBe('replay');
      expect(f.kind === 'replay' && f.commitLsn).toBe(bad.finalLsn);
      expect((f as { error: { code?: string } }).error.code).toBe(code);
      expect((await rows('checked')).map((r) => r.id)).toEqual([1, 2]);
      expect(await progress()).toBe(ok2.endLsn);
      // Nothing past the last commit may be acknowledged.
      expect(h.a.inFlight()).toBe(true);
      expect(h.a.lastAppliedEndLsn <= ok2.endLsn).toBe(true);
      await h.a.drain();
    },
  );

  it('never cuts a value to fit a narrower column: the transaction fails for the replay, the ones before it commit whole', async () => {
    // The source's columns are wider (text) than the target's, as on a node where a column
    // was widened everywhere but here: an explicit cast to varchar(3) would keep 'abc' of 'abcdef'.
    await admin.query(`TRUNCATE ${SCHEMA}.narrow`);
    const h = await makeApplier({});
    await h.init();
    const ok1 = tx([ins(6, ['1', 'abc', 'xyz', 'ab'])]);
    const ok2 = tx([upd(6, ['1', 'ab', 'xy', 'a'])]);
    const tooLong = tx([upd(6, ['1', 'abcdef', 'xy', 'a'])]);
    const after = tx([ins(6, ['2', 'a', 'b', 'c'])]);
    for (const t of [ok1, ok2, tooLong, after]) h.feed(t.msgs);
    const f: ApplierFailure = await h.a.failed;
    expect(f.kind).toBe('replay');
    expect(f.kind === 'replay' && f.commitLsn).toBe(tooLong.finalLsn);
    expect((f as { error: { code?: string } }).error.code).toBe('22001');
    expect(await rows('narrow')).toEqual([{ id: 1, v: 'ab', c: 'xy', f: 'a ' }]);
    expect(await progress()).toBe(ok2.endLsn);
    await h.a.drain();

    // The same through the domain over varchar(3), on insert.
    const h2 = await makeApplier({});
    await h2.init();
    const domainTooLong = tx([ins(6, ['3', 'a', 'wxyz', 'a'])]);
    h2.feed(domainTooLong.msgs);
    const f2: ApplierFailure = await h2.a.failed;
    expect(f2.kind === 'replay' && f2.commitLsn).toBe(domainTooLong.finalLsn);
    expect((f2 as { error: { code?: string } }).error.code).toBe('22001');
    expect((await rows('narrow')).map((r) => r.id)).toEqual([1]);
    await h2.a.drain();
  });

  it('under policy error a raced row fails the transaction for the change-by-change replay (PF003)', async () => {
    await admin.query(`TRUNCATE ${SCHEMA}.kv`);
    const h = await makeApplier({ policy: 'error' });
    await h.init();
    await writeAs('pgfleet_o', T0 + 500n, `INSERT INTO ${SCHEMA}.kv VALUES (1, 'o1')`);
    const t1 = tx([upd(1, ['1', 's1'])], { ts: T0 + 600n });
    h.feed(t1.msgs);
    const f = await h.a.failed;
    expect(f.kind).toBe('replay');
    expect((f as { error: { code?: string } }).error.code).toBe('PF003');
    expect((await rows('kv')).map((r) => r.v)).toEqual(['o1']);
    await h.a.drain();
  });

  it('applies rows of a table with more columns than a function takes arguments', async () => {
    const cols = Array.from({ length: 120 }, (_, i) => `c${i}`);
    await admin.query(
      `DROP TABLE IF EXISTS ${SCHEMA}.wide; CREATE TABLE ${SCHEMA}.wide (id int PRIMARY KEY, ${cols.map((c) => `${c} text`).join(', ')})`,
    );
    relations.push(
      rel(9, 'wide', [['id', 23, true], ...cols.map((c) => [c, 25, false] as [string, number, boolean])]),
    );
    const h = await makeApplier({});
    await h.init();
    const t1 = tx([ins(9, ['1', ...cols.map((c) => `${c}!`)]), ins(9, ['2', ...cols.map(() => null)])]);
    h.feed(t1.msgs);
    await h.settled();
    expect(h.a.hasFailed()).toBe(false);
    const { rows: w } = await admin.query(`SELECT id, c0, c119 FROM ${SCHEMA}.wide ORDER BY id`);
    expect(w).toEqual([
      { id: 1, c0: 'c0!', c119: 'c119!' },
      { id: 2, c0: null, c119: null },
    ]);
  });
});
