import { connect } from '@pgfleet/connection';
import { testServer } from '@pgfleet/sandbox/vitest';
import { formatLsn, type Lsn, parseLsn } from '@pgfleet/wal';
import type pg from 'pg';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PgoutputMessage } from '../decode/messages.js';
import { METADATA_DDL } from '../metadata.js';
import { formatPgTimestamp } from '../pg-time.js';
import { Applier } from './applier.js';

const ORIGIN = 'pgfleet_applier_pg_test';
const TABLE = 'mm_applier_pg_test';

async function waitUntil(
  what: string,
  ok: () => Promise<boolean> | boolean,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('Applier on a real server', () => {
  let admin: pg.Client;
  let db: pg.Client;
  let blocker: pg.Client;
  let start: Lsn;

  beforeAll(async () => {
    const conninfo = testServer().conninfo;
    admin = await connect(conninfo);
    await admin.query('SELECT pg_advisory_lock(4711)'); // other files create the same schema
    for (const ddl of METADATA_DDL) await admin.query(ddl);
    await admin.query('SELECT pg_advisory_unlock(4711)');
    await admin.query(
      `DROP TABLE IF EXISTS public.${TABLE}; CREATE TABLE public.${TABLE} (id int PRIMARY KEY, v text)`,
    );
    await admin.query(
      `SELECT pg_replication_origin_create($1) WHERE NOT EXISTS (SELECT 1 FROM pg_replication_origin WHERE roname = $1)`,
      [ORIGIN],
    );
    db = await connect(conninfo);
    await db.query('SET session_replication_role = replica');
    await db.query('SELECT pg_replication_origin_session_setup($1)', [ORIGIN]);
    const { rows } = await db.query(
      `SELECT coalesce(pg_replication_origin_session_progress(false), '0/0')::text AS lsn`,
    );
    start = parseLsn(rows[0].lsn);
    (db as unknown as { pipeline: boolean }).pipeline = true;
    blocker = await connect(conninfo);
  });

  afterAll(async () => {
    await blocker?.end().catch(() => {});
    await db?.end().catch(() => {});
    await admin?.query(`DROP TABLE IF EXISTS public.${TABLE}`).catch(() => {});
    await admin?.query('SELECT pg_replication_origin_drop($1)', [ORIGIN]).catch(() => {});
    await admin?.end();
  });

  const makeApplier = (applied: Lsn[], startProgress: Lsn) =>
    new Applier({
      edge: { id: 's_t', source: 's', target: 't', slot: 'x', publication: 'x', origin: ORIGIN },
      db,
      sourceOriginId: 1,
      sourceRank: 0,
      rankOfOriginId: () => 1,
      originNameOf: (id) => `origin#${id}`,
      policyFor: () => 'last_update_wins',
      deadLetter: 'pause_edge',
      batchRows: 1000,
      maxInFlightTransactions: 1000,
      startProgress,
      carefulCommitLsn: null,
      pausedOnCareful: false,
      deadLetterTx: null,
      replayOriginId: null,
      loadTargetTable: async () => ({
        columns: new Map([
          ['id', { type: 'integer', identityAlways: false, generated: false }],
          ['v', { type: 'text', identityAlways: false, generated: false }],
        ]),
        uniqueKey: ['id'],
      }),
      skipRequested: async () => false,
      recordPausedDeadLetter: async () => {},
      recordErrorConflict: async () => {},
      hooks: {
        onTransactionApplied: (tx) => applied.push(tx.endLsn),
        onTransactionSkipped: () => {},
        onConflict: () => {},
      },
      logger: pino({ level: 'silent' }),
    });
  const lsn = (n: number) => (start + BigInt(n)) as Lsn;
  const tx = (id: number, at: number): PgoutputMessage[] => [
    { tag: 'begin', finalLsn: lsn(at), commitTs: 800_000_000_000_000n + BigInt(at), xid: at },
    { tag: 'insert', relationId: 1, newTuple: [String(id), `v${id}`] },
    { tag: 'commit', commitLsn: lsn(at), endLsn: lsn(at + 8), commitTs: 800_000_000_000_000n + BigInt(at) },
  ];
  const relation: PgoutputMessage = {
    tag: 'relation',
    relationId: 1,
    schema: 'public',
    name: TABLE,
    replicaIdentity: 'd',
    columns: [
      { name: 'id', typeOid: 23, typeMod: -1, isKey: true },
      { name: 'v', typeOid: 25, typeMod: -1, isKey: false },
    ],
  };

  it('a status-timer settle racing the apply loop never drops a transaction whose COMMIT is still running', async () => {
    const applied: Lsn[] = [];
    const a = makeApplier(applied, start);
    await a.handle(relation);
    // Another session holds key 2, so the second transaction's INSERT (and COMMIT) waits.
    await blocker.query('BEGIN');
    await blocker.query(`INSERT INTO public.${TABLE} VALUES (2, 'blocker')`);
    for (const m of [...tx(1, 100), ...tx(2, 200)]) await a.handle(m);
    await waitUntil('first transaction committed', async () => {
      const { rows } = await admin.query(`SELECT count(*)::int AS n FROM public.${TABLE}`);
      return rows[0].n === 1;
    });
    await new Promise((r) => setTimeout(r, 50));

    await Promise.all([a.settle(), a.settle(), a.settle()]);
    expect(applied).toEqual([lsn(108)]);
    expect(a.lastAppliedEndLsn).toBe(lsn(108));
    expect(a.inFlight()).toBe(true); // the second COMMIT has not returned: nothing may be acked past it

    await blocker.query('ROLLBACK');
    await waitUntil('second transaction confirmed', async () => {
      await a.settle();
      return !a.inFlight();
    });
    expect(applied).toEqual([lsn(108), lsn(208)]);
    expect(a.hasFailed()).toBe(false);
    const { rows } = await admin.query(`SELECT id, v FROM public.${TABLE} ORDER BY id`);
    expect(rows).toEqual([
      { id: 1, v: 'v1' },
      { id: 2, v: 'v2' },
    ]);
  });

  it('after a pipelined COMMIT comes back as ROLLBACK, the applier counts as in flight, so no keepalive is acked past it', async () => {
    // A wrong expected progress makes the guard (an error the pipeline ignores as a
    // consequence) abort the transaction: its COMMIT answers ROLLBACK with no other error.
    const applied: Lsn[] = [];
    const a = makeApplier(applied, lsn(1));
    await a.handle(relation);
    for (const m of tx(10, 300)) await a.handle(m);
    await waitUntil('rollback noticed', async () => {
      await a.settle();
      return a.hasFailed();
    });
    expect(applied).toEqual([]);
    expect(a.inFlight()).toBe(true);
    const { rows } = await admin.query(`SELECT count(*)::int AS n FROM public.${TABLE} WHERE id = 10`);
    expect(rows).toEqual([{ n: 0 }]);
  });
  it('a run of insert-only transactions goes out as one batch, each its own commit; a failing one leaves the ones before it committed and is replayed', async () => {
    const { rows: prog } = await db.query(
      `SELECT coalesce(pg_replication_origin_session_progress(false), '0/0')::text AS lsn`,
    );
    const from = parseLsn(prog[0].lsn);
    const at = (i: number) => Number(from - start) + 1000 + i * 100;
    // Key 25 exists locally (written by the target itself): its transaction conflicts.
    await admin.query(`INSERT INTO public.${TABLE} VALUES (25, 'local')`);
    const applied: Lsn[] = [];
    const a = makeApplier(applied, from);
    await a.handle(relation);
    for (let i = 0; i < 10; i++) for (const m of tx(20 + i, at(i))) await a.handle(m);
    const failure = await a.failed;
    expect(failure.kind).toBe('replay');
    expect(failure.kind === 'replay' && failure.commitLsn).toBe(lsn(at(5)));
    await a.drain();

    const { rows } = await admin.query(
      `SELECT id, xmin::text AS x, (pg_xact_commit_timestamp_origin(xmin)).timestamp::text AS ts,
              (SELECT roname FROM pg_replication_origin WHERE roident = (pg_xact_commit_timestamp_origin(t.xmin)).roident) AS origin
         FROM public.${TABLE} t WHERE id BETWEEN 20 AND 29 ORDER BY id`,
    );
    expect(rows.map((r) => r.id)).toEqual([20, 21, 22, 23, 24, 25]);
    const appliedRows = rows.filter((r) => r.id !== 25);
    // Each source transaction is its own target transaction, with the source's origin and commit time.
    expect(new Set(appliedRows.map((r) => r.x)).size).toBe(5);
    expect(appliedRows.map((r) => r.origin)).toEqual(Array(5).fill(ORIGIN));
    const { rows: expectedTs } = await admin.query(
      'SELECT ts::timestamptz::text AS ts FROM unnest($1::text[]) AS ts',
      [[0, 1, 2, 3, 4].map((i) => formatPgTimestamp(800_000_000_000_000n + BigInt(at(i))))],
    );
    expect(appliedRows.map((r) => r.ts)).toEqual(expectedTs.map((r) => r.ts));
    // Origin progress names the last committed transaction: a restart resumes at the failing one.
    const { rows: after } = await admin.query(
      'SELECT pg_replication_origin_progress($1, false)::text AS lsn',
      [ORIGIN],
    );
    expect(after[0].lsn).toBe(formatLsn(lsn(at(4) + 8)));
    expect(applied.every((l) => l <= lsn(at(4) + 8))).toBe(true);
  });
});
