import type { ReplicatorHandle, ResolvedConfig } from '@pgfleet/multimaster';
import type { Sandbox, SandboxNode } from '@pgfleet/sandbox';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../support/eventually.js';
import {
  captureLogs,
  checkTables,
  client,
  initAndStart,
  meshConfig,
  onAll,
  quiesce,
  startNodes,
} from './fixture.js';

/**
 * Remote changes that meet a row locked by a local transaction: the apply waits for the
 * lock and must then compare against the row version it locked, not the one it saw
 * before waiting (PostgreSQL's EvalPlanQual re-fetches the locked table's row but not
 * what a LATERAL function computed from the old one). Every wait is made deterministic
 * by holding a local transaction open until the apply session is seen waiting on it.
 */

const POLICIES = ['last_update_wins', 'first_update_wins', 'apply_remote', 'keep_local'] as const;
type Policy = (typeof POLICIES)[number];
const CONVERGING: Policy[] = ['last_update_wins', 'first_update_wins'];
const tables = POLICIES.map((p) => `lw.${p}`);
/** What must be equal everywhere after each test. */
const converging = ['lw.last_update_wins', 'lw.first_update_wins', 'lw.force'];

const DDL = `CREATE SCHEMA lw;
  ${POLICIES.map((p) => `CREATE TABLE lw.${p} (id int PRIMARY KEY, v text);`).join('\n')}
  CREATE TABLE lw.error (id int PRIMARY KEY, v text);
  CREATE TABLE lw.force (id int PRIMARY KEY, v text);`;

/**
 * Rows of lw.force (last_update_wins) that the transactions below change first. Each was
 * last changed by another node than the one writing it now, so the first statement of the
 * transaction fails its fast-path guard at once and the edge replays the whole
 * transaction on the careful path, row by row: that is where it then meets the lock.
 * Rows 20-29 were last changed by b, 30-39 by c; each test uses its own.
 */
const force = (id: number, v: string) => `UPDATE lw.force SET v = '${v}' WHERE id = ${id}`;

/** One statement per policy table, in one transaction. */
const everyTable = (sql: (t: string) => string) => tables.map(sql).join('; ');

describe('multimaster: conflicts behind lock waits converge', () => {
  let sb: Sandbox;
  let a: SandboxNode;
  let b: SandboxNode;
  let c: SandboxNode;
  let nodes: SandboxNode[];
  let config: ResolvedConfig;
  let rep: ReplicatorHandle;
  const open: pg.Client[] = [];
  const logs = captureLogs();

  /** A local transaction left open on `node` after running `sql`. */
  async function hold(node: SandboxNode, sql: string): Promise<pg.Client> {
    const cl = await client(node);
    open.push(cl);
    await cl.query('BEGIN');
    await cl.query(sql);
    return cl;
  }

  /** Waits until the apply session of `edge` waits on a lock (a row or a transaction). */
  async function applyWaits(node: SandboxNode, edge: string): Promise<void> {
    await eventually(
      `apply session of ${edge} waiting on a lock`,
      () =>
        node.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'`,
          [`pgfleet-mm:${edge}`],
        ),
      (r) => r[0]?.n === 1,
      { timeoutMs: 30_000 },
    );
  }

  async function values(p: string, id: number): Promise<Record<string, string | null>> {
    const out: Record<string, string | null> = {};
    for (const n of nodes) {
      const r = await n.query<{ v: string }>(`SELECT v FROM lw.${p} WHERE id = $1`, [id]);
      out[n.name] = r.length ? (r[0]?.v ?? null) : null;
    }
    return out;
  }

  async function conflicts(node: SandboxNode, p: string, id: number) {
    return node.query<{ edge: string; kind: string; resolution: string }>(
      `SELECT edge, kind, resolution FROM pgfleet.conflicts
        WHERE table_schema = 'lw' AND table_name = $1 AND key->>'id' = $2 ORDER BY id`,
      [p, String(id)],
    );
  }

  async function expectConverged(): Promise<void> {
    const checks = await checkTables(config, converging);
    expect(Object.fromEntries(checks.map((t) => [t.table, t.equal]))).toEqual(
      Object.fromEntries(converging.map((t) => [t, true])),
    );
  }

  beforeAll(async () => {
    ({ sb, nodes } = await startNodes(['a', 'b', 'c']));
    [a, b, c] = nodes as [SandboxNode, SandboxNode, SandboxNode];
    await onAll(nodes, DDL);
    config = meshConfig(nodes, {
      tables: [
        ...POLICIES.map((p) => ({ name: `lw.${p}`, conflict: p })),
        { name: 'lw.error', conflict: 'error' },
        { name: 'lw.force', conflict: 'last_update_wins' },
      ],
      // A dead letter here would hide a lost race behind a pause and a retry.
      deadLetter: 'pause_edge',
    });
    rep = await initAndStart(config, logs.logger);
    await a.query(everyTable((t) => `INSERT INTO ${t} SELECT g, 'orig' FROM generate_series(1, 9) g`));
    await a.query(`INSERT INTO lw.error SELECT g, 'orig' FROM generate_series(1, 3) g`);
    await a.query(`INSERT INTO lw.force SELECT g, 'orig' FROM generate_series(20, 39) g`);
    await quiesce(nodes);
    await b.query(`UPDATE lw.force SET v = 'b-pre' WHERE id BETWEEN 20 AND 29`);
    await c.query(`UPDATE lw.force SET v = 'c-pre' WHERE id BETWEEN 30 AND 39`);
    await quiesce(nodes);
  });

  afterAll(async () => {
    for (const cl of open) await cl.end().catch(() => {});
    await rep?.stop();
    await sb?.destroy();
  });

  it('an update waiting behind a later local update of the same row (careful path): the later one wins everywhere', async () => {
    // The reported case: b holds row 1; a commits one transaction that first updates a row b
    // changed (a conflict) and then row 1; b commits afterwards, so b's row 1 is the later one.
    const tb = await hold(
      b,
      everyTable((t) => `UPDATE ${t} SET v = 'b' WHERE id = 1`),
    );
    await a.query(
      `BEGIN; ${force(20, 'a')}; ${everyTable((t) => `UPDATE ${t} SET v = 'a' WHERE id = 1`)}; COMMIT`,
    );
    await applyWaits(b, 'a_b');
    await tb.query('COMMIT');
    await quiesce(nodes);

    expect(await values('last_update_wins', 1)).toEqual({ a: 'b', b: 'b', c: 'b' });
    expect(await values('first_update_wins', 1)).toEqual({ a: 'a', b: 'a', c: 'a' });
    // Not converging by design: each node takes the other's (apply_remote) or keeps its own.
    expect(await values('apply_remote', 1)).toEqual({ a: 'b', b: 'a', c: 'b' });
    expect(await values('keep_local', 1)).toEqual({ a: 'a', b: 'b', c: 'a' });
    // b detected the conflict with the row version it waited for, under every policy.
    const onB: Record<Policy, string> = {
      last_update_wins: 'skip',
      first_update_wins: 'apply',
      apply_remote: 'apply',
      keep_local: 'skip',
    };
    for (const p of POLICIES) {
      expect(await conflicts(b, p, 1), p).toEqual([
        { edge: 'a_b', kind: 'update_differs', resolution: onB[p] },
      ]);
    }
    await expectConverged();
  });

  it('an update waiting behind a local update on the fast path converges the same way', async () => {
    const tb = await hold(
      b,
      everyTable((t) => `UPDATE ${t} SET v = 'b' WHERE id = 3`),
    );
    await a.query(everyTable((t) => `UPDATE ${t} SET v = 'a' WHERE id = 3`));
    await applyWaits(b, 'a_b');
    await tb.query('COMMIT');
    await quiesce(nodes);
    expect(await values('last_update_wins', 3)).toEqual({ a: 'b', b: 'b', c: 'b' });
    expect(await values('first_update_wins', 3)).toEqual({ a: 'a', b: 'a', c: 'a' });
    expect(await values('keep_local', 3)).toEqual({ a: 'a', b: 'b', c: 'a' });
    await expectConverged();
  });

  it('three concurrent updates of one row, two of them waiting for locks on two nodes, end with the same row everywhere', async () => {
    // b and c each hold row 4 in a transaction that starts with a row the other nodes last
    // got from elsewhere (30 from c, 22 from b), so their edges run carefully too.
    const tb = await hold(
      b,
      `${force(30, 'b')}; ${everyTable((t) => `UPDATE ${t} SET v = 'b' WHERE id = 4`)}`,
    );
    const tc = await hold(
      c,
      `${force(22, 'c')}; ${everyTable((t) => `UPDATE ${t} SET v = 'c' WHERE id = 4`)}`,
    );
    await a.query(
      `BEGIN; ${force(21, 'a')}; ${everyTable((t) => `UPDATE ${t} SET v = 'a' WHERE id = 4`)}; COMMIT`,
    );
    await applyWaits(b, 'a_b');
    await applyWaits(c, 'a_c');
    await tb.query('COMMIT'); // b's update is later than a's
    await applyWaits(c, 'b_c');
    await tc.query('COMMIT'); // c's is the latest
    await quiesce(nodes);

    expect(await values('last_update_wins', 4)).toEqual({ a: 'c', b: 'c', c: 'c' });
    expect(await values('first_update_wins', 4)).toEqual({ a: 'a', b: 'a', c: 'a' });
    for (const p of POLICIES) {
      const kinds = (await conflicts(c, p, 4)).map((r) => `${r.edge}:${r.kind}`).sort();
      expect(kinds, `${p} on c`).toEqual(['a_c:update_differs', 'b_c:update_differs']);
    }
    await expectConverged();
  });

  it('a delete waiting behind a local update is a delete_differs conflict and the delete wins where the policy says so', async () => {
    const tb = await hold(
      b,
      everyTable((t) => `UPDATE ${t} SET v = 'b' WHERE id = 7`),
    );
    await a.query(`BEGIN; ${force(23, 'a')}; ${everyTable((t) => `DELETE FROM ${t} WHERE id = 7`)}; COMMIT`);
    await applyWaits(b, 'a_b');
    await tb.query('COMMIT');
    await quiesce(nodes);
    for (const p of POLICIES) {
      expect(await conflicts(b, p, 7), p).toEqual([
        { edge: 'a_b', kind: 'delete_differs', resolution: p === 'keep_local' ? 'skip' : 'apply' },
      ]);
    }
    for (const p of CONVERGING) expect(await values(p, 7), p).toEqual({ a: null, b: null, c: null });
    await expectConverged();
  });

  it('an insert racing a local insert of the same key is an insert_exists conflict, never a dead letter', async () => {
    const tb = await hold(
      b,
      everyTable((t) => `INSERT INTO ${t} VALUES (100, 'b')`),
    );
    await a.query(
      `BEGIN; ${force(24, 'a')}; ${everyTable((t) => `INSERT INTO ${t} VALUES (100, 'a')`)}; COMMIT`,
    );
    await applyWaits(b, 'a_b');
    await tb.query('COMMIT');
    await quiesce(nodes);
    expect(await values('last_update_wins', 100)).toEqual({ a: 'b', b: 'b', c: 'b' });
    expect(await values('first_update_wins', 100)).toEqual({ a: 'a', b: 'a', c: 'a' });
    for (const p of POLICIES) {
      expect(
        (await conflicts(b, p, 100)).map((r) => r.kind),
        p,
      ).toEqual(['insert_exists']);
    }
    expect(await b.query('SELECT id FROM pgfleet.dead_letters')).toEqual([]);
    expect(rep.status().edges.every((e) => e.state === 'streaming')).toBe(true);
    await expectConverged();
  });

  it('under policy error, a conflict found after a lock wait pauses the edge instead of overwriting the local row', async () => {
    const tb = await hold(b, `UPDATE lw.error SET v = 'b' WHERE id = 1`);
    // The first statement conflicts under last_update_wins (resolved), so lw.error's row is
    // looked up on the careful path, behind b's lock.
    await a.query(`BEGIN; ${force(25, 'a')}; UPDATE lw.error SET v = 'a' WHERE id = 1; COMMIT`);
    await applyWaits(b, 'a_b');
    await tb.query('COMMIT');
    const paused = await eventually(
      'edge a_b paused',
      async () => rep.status().edges.find((e) => e.edge === 'a_b'),
      (e) => e?.state === 'paused',
      { timeoutMs: 30_000 },
    );
    expect(paused?.lastError?.message).toMatch(/conflict update_differs on lw\.error/);
    expect((await b.query(`SELECT v FROM lw.error WHERE id = 1`))[0]).toEqual({ v: 'b' });
    // Let the edge go on: the operator skips the transaction.
    const [dl] = await b.query<{ lsn: string }>(
      `SELECT commit_lsn::text AS lsn FROM pgfleet.dead_letters WHERE edge = 'a_b' AND action = 'pause'`,
    );
    await b.query(`INSERT INTO pgfleet.skip_requests (edge, commit_lsn) VALUES ('a_b', $1::pg_lsn)`, [
      dl?.lsn,
    ]);
    await eventually(
      'edge a_b streaming again',
      async () => rep.status().edges.find((e) => e.edge === 'a_b')?.state,
      (s) => s === 'streaming',
      { timeoutMs: 30_000 },
    );
  });
});
