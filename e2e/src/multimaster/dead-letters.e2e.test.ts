import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  checkMesh,
  type DeadLetterPolicy,
  initMesh,
  type ReplicatorHandle,
  type ResolvedConfig,
  replayDeadLetter,
  startReplicator,
} from '@pgfleet/multimaster';
import type { Sandbox, SandboxNode } from '@pgfleet/sandbox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../support/eventually.js';
import { pgfleetMm } from './cli-runner.js';
import { captureLogs, client, meshConfig, onAll, quiesce, startNodes } from './fixture.js';

/**
 * A transaction that one target refuses (here: a CHECK constraint only b has) under each
 * dead-letter policy. Whatever the policy, each node ends with the source's rows minus
 * exactly the rows its dead letters name, every skipped change is on record with its
 * transaction's LSN, xid and commit time, `check` names those keys apart from unexplained
 * ones, and a replay once the cause is fixed makes the node whole again.
 */

const POLICIES: DeadLetterPolicy[] = ['skip_transaction', 'discard', 'pause_edge'];
const table = (p: DeadLetterPolicy) => `dl.${p}`;

const DDL = `CREATE SCHEMA dl;
  ${POLICIES.map((p) => `CREATE TABLE ${table(p)} (id int PRIMARY KEY, v text);`).join('\n')}`;

/** Only b refuses 'bad' (DDL is not replicated, constraints may differ per node). */
const B_ONLY = POLICIES.map(
  (p) => `ALTER TABLE ${table(p)} ADD CONSTRAINT no_bad_${p} CHECK (v IS DISTINCT FROM 'bad')`,
).join('; ');

type Rows = Map<number, string | null>;

async function rows(n: SandboxNode, t: string): Promise<Rows> {
  const r = await n.query<{ id: number; v: string | null }>(`SELECT id, v FROM ${t} ORDER BY id`);
  return new Map(r.map((x) => [x.id, x.v]));
}

/** Keys whose row differs between two nodes (missing on one side, or another value). */
function differing(a: Rows, b: Rows): number[] {
  const keys = new Set([...a.keys(), ...b.keys()]);
  return [...keys].filter((k) => !a.has(k) || !b.has(k) || a.get(k) !== b.get(k)).sort((x, y) => x - y);
}

/** Keys named by the skipped, not replayed dead letters of a node for one table. */
async function named(n: SandboxNode, t: string): Promise<number[]> {
  const [schema, name] = t.split('.');
  const r = await n.query<{ id: number }>(
    `SELECT DISTINCT (img.j->>'id')::int AS id
       FROM pgfleet.dead_letter_changes c JOIN pgfleet.dead_letters d ON d.id = c.dead_letter_id
            CROSS JOIN LATERAL (VALUES (c.old), (c.new)) AS img(j)
      WHERE c.table_schema = $1 AND c.table_name = $2 AND img.j IS NOT NULL AND d.resolved IS NULL
        AND d.action <> 'pause' ORDER BY 1`,
    [schema, name],
  );
  return r.map((x) => x.id);
}

describe('multimaster: skipped transactions are recorded whole and can be replayed', () => {
  let sb: Sandbox;
  let a: SandboxNode;
  let b: SandboxNode;
  let c: SandboxNode;
  let nodes: SandboxNode[];
  let rep: ReplicatorHandle | undefined;
  let dir: string;
  const logs = captureLogs();
  const configs = new Map<DeadLetterPolicy, ResolvedConfig>();

  const configFor = (p: DeadLetterPolicy) => configs.get(p) as ResolvedConfig;

  beforeAll(async () => {
    ({ sb, nodes } = await startNodes(['a', 'b', 'c']));
    [a, b, c] = nodes as [SandboxNode, SandboxNode, SandboxNode];
    await onAll(nodes, DDL);
    await b.query(B_ONLY);
    for (const p of POLICIES) {
      configs.set(p, meshConfig(nodes, { tables: POLICIES.map(table), deadLetter: p }));
    }
    await initMesh(configFor('pause_edge'), { logger: logs.logger });
    dir = mkdtempSync(join(tmpdir(), 'pgfleet-mm-dl-'));
  });

  afterAll(async () => {
    await rep?.stop();
    await sb?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /**
   * On a: rows 1..5, then one transaction of six changes of which b refuses the fifth,
   * then a later transaction that b must still get. Returns the refused transaction's xid.
   */
  async function writeOnA(t: string): Promise<{ xid: string }> {
    await a.query(`INSERT INTO ${t} SELECT g, 'ok' FROM generate_series(1, 5) g`);
    await quiesce(nodes);
    const cl = await client(a);
    try {
      await cl.query('BEGIN');
      await cl.query(`INSERT INTO ${t} VALUES (10, 'x'), (20, 'y')`);
      await cl.query(`UPDATE ${t} SET v = 'u' WHERE id = 1`);
      await cl.query(`DELETE FROM ${t} WHERE id = 2`);
      await cl.query(`INSERT INTO ${t} VALUES (30, 'bad')`);
      await cl.query(`INSERT INTO ${t} VALUES (40, 'z')`);
      const { rows: x } = await cl.query('SELECT pg_current_xact_id()::text AS xid');
      await cl.query('COMMIT');
      return { xid: x[0].xid as string };
    } finally {
      await cl.end();
    }
  }

  async function expectRecordedExactly(p: DeadLetterPolicy, expectB: number[]): Promise<void> {
    const t = table(p);
    const src = await rows(a, t);
    expect(differing(src, await rows(c, t)), `${p}: c has every row`).toEqual([]);
    expect(await named(c, t)).toEqual([]);
    const diffB = differing(src, await rows(b, t));
    expect(diffB, `${p}: what b lacks`).toEqual(expectB);
    expect(await named(b, t), `${p}: what b's dead letters name`).toEqual(diffB);
    // check tells the recorded differences apart from unexplained ones.
    const [chk] = (await checkMesh(configFor(p))).filter((x) => x.table === t);
    expect(chk?.equal).toBe(false);
    expect(chk?.differingKeys).toEqual([]);
    expect(chk?.deadLetterKeys.map((k) => k.key)).toEqual(expectB.map((k) => `(${k})`).sort());
    for (const k of chk?.deadLetterKeys ?? []) expect(k.deadLetters[0]).toMatch(/^b:\d+$/);
  }

  async function replayAll(p: DeadLetterPolicy): Promise<void> {
    const t = table(p);
    const ids = await b.query<{ id: string }>(
      `SELECT DISTINCT d.id::text AS id FROM pgfleet.dead_letters d JOIN pgfleet.dead_letter_changes c ON c.dead_letter_id = d.id
        WHERE c.table_name = $1 AND d.resolved IS NULL AND d.action <> 'pause'`,
      [p],
    );
    expect(ids.length).toBeGreaterThan(0);
    // Refused again while the cause is still there: nothing is applied.
    await expect(replayDeadLetter(configFor(p), 'b', ids[0]?.id as string)).rejects.toThrow(/refused again/);
    await b.query(`ALTER TABLE ${t} DROP CONSTRAINT no_bad_${p}`);
    for (const { id } of ids) {
      const r = await replayDeadLetter(configFor(p), 'b', id);
      expect(r.laterChangesSkipped).toBe(0);
    }
    await quiesce(nodes);
    expect(differing(await rows(a, t), await rows(b, t))).toEqual([]);
    const [chk] = (await checkMesh(configFor(p))).filter((x) => x.table === t);
    expect(chk?.equal).toBe(true);
    // A replayed transaction is not sent on: a and c saw nothing new from b.
    expect(await named(b, t)).toEqual([]);
  }

  it('skip_transaction: every change of the refused transaction is recorded with its LSN, xid and commit time, then replayed', async () => {
    const p: DeadLetterPolicy = 'skip_transaction';
    const t = table(p);
    rep = startReplicator(configFor(p), { logger: logs.logger });
    const { xid } = await writeOnA(t);
    await a.query(`INSERT INTO ${t} VALUES (50, 'after')`);
    await quiesce(nodes);
    await expectRecordedExactly(p, [1, 2, 10, 20, 30, 40]);
    const [dl] = await b.query<Record<string, unknown>>(
      `SELECT action, changes, xid::text AS xid, commit_lsn < end_lsn AS lsns, sqlstate, error
         FROM pgfleet.dead_letters WHERE edge = 'a_b'`,
    );
    expect(dl).toMatchObject({ action: 'skip_transaction', changes: 6, xid, lsns: true, sqlstate: '23514' });
    expect(dl?.error).toMatch(/no_bad_skip_transaction/);
    // The commit time is the source transaction's (as a recorded it), not the time of recording.
    const [ts] = await a.query<{ ts: string }>(
      `SELECT extract(epoch FROM pg_xact_commit_timestamp(xmin))::text AS ts FROM ${t} WHERE id = 40`,
    );
    const [recorded] = await b.query<{ ts: string }>(
      `SELECT extract(epoch FROM commit_ts)::text AS ts FROM pgfleet.dead_letters WHERE edge = 'a_b'`,
    );
    expect(recorded?.ts).toBe(ts?.ts);
    const changes = await b.query<{ kind: string; old: unknown; new: unknown }>(
      `SELECT c.kind, c.old, c.new FROM pgfleet.dead_letter_changes c JOIN pgfleet.dead_letters d ON d.id = c.dead_letter_id
        WHERE d.edge = 'a_b' ORDER BY c.seq`,
    );
    expect(changes).toEqual([
      { kind: 'insert', old: null, new: { id: '10', v: 'x' } },
      { kind: 'insert', old: null, new: { id: '20', v: 'y' } },
      { kind: 'update', old: null, new: { id: '1', v: 'u' } },
      { kind: 'delete', old: { id: '2' }, new: null },
      { kind: 'insert', old: null, new: { id: '30', v: 'bad' } },
      { kind: 'insert', old: null, new: { id: '40', v: 'z' } },
    ]);
    await replayAll(p);
    await rep.stop();
    rep = undefined;
  });

  it('discard: only the refused change is skipped and recorded, the rest of its transaction applies', async () => {
    const p: DeadLetterPolicy = 'discard';
    rep = startReplicator(configFor(p), { logger: logs.logger });
    await writeOnA(table(p));
    await quiesce(nodes);
    await expectRecordedExactly(p, [30]);
    await replayAll(p);
    await rep.stop();
    rep = undefined;
  });

  it('pause_edge + `pgfleet-mm skip`: the operator-skipped transaction is recorded whole; `dead-letters` lists and replays it', async () => {
    const p: DeadLetterPolicy = 'pause_edge';
    const t = table(p);
    const cfg = join(dir, 'mesh.yaml');
    writeFileSync(
      cfg,
      [
        'nodes:',
        ...nodes.map((n) => `  - { name: ${n.name}, conninfo: "${n.conninfo()}" }`),
        `tables: [${POLICIES.map(table).join(', ')}]`,
        'deadLetter: pause_edge',
      ].join('\n'),
    );
    rep = startReplicator(configFor(p), { logger: logs.logger });
    await writeOnA(t);
    const paused = await eventually(
      'edge a_b paused',
      async () => rep?.status().edges.find((e) => e.edge === 'a_b'),
      (e) => e?.state === 'paused',
      { timeoutMs: 30_000 },
    );
    const lsn = (paused?.lastError?.details as { commitLsn?: string } | undefined)?.commitLsn as string;
    expect(lsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    const skip = await pgfleetMm(['skip', '-c', cfg, '--edge', 'a->b', '--lsn', lsn]);
    expect(skip.code, skip.stderr).toBe(0);
    await eventually(
      'edge a_b streaming again',
      async () => rep?.status().edges.find((e) => e.edge === 'a_b')?.state,
      (s) => s === 'streaming',
      { timeoutMs: 30_000 },
    );
    await quiesce(nodes);
    await expectRecordedExactly(p, [1, 2, 10, 20, 30, 40]);
    // The pause record is resolved by the skip; the skipped_by_operator one stands.
    expect(
      await b.query(
        `SELECT action, resolved, changes FROM pgfleet.dead_letters WHERE action IN ('pause', 'skipped_by_operator') ORDER BY id`,
      ),
    ).toEqual([
      { action: 'pause', resolved: 'skipped', changes: 0 },
      { action: 'skipped_by_operator', resolved: null, changes: 6 },
    ]);

    const list = await pgfleetMm(['dead-letters', '-c', cfg, '--node', 'b', '--json']);
    expect(list.code, list.stderr).toBe(0);
    const entries = (JSON.parse(list.stdout).nodes as Array<{ entries: Array<Record<string, unknown>> }>)[0]
      ?.entries;
    expect(entries).toEqual([
      expect.objectContaining({ action: 'skipped_by_operator', changes: 6, commitLsn: lsn, resolved: null }),
    ]);
    const ref = entries?.[0]?.ref as string;
    const again = await pgfleetMm(['dead-letters', '-c', cfg, '--replay', ref]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/refused again, nothing was replayed/);
    await b.query(`ALTER TABLE ${t} DROP CONSTRAINT no_bad_${p}`);
    const replay = await pgfleetMm(['dead-letters', '-c', cfg, '--replay', ref]);
    expect(replay.code, replay.stderr).toBe(0);
    expect(replay.stdout).toMatch(new RegExp(`replayed ${ref} .*: 6 change\\(s\\)`));
    expect(replay.stderr).not.toMatch(/deprecat/i);
    const twice = await pgfleetMm(['dead-letters', '-c', cfg, '--replay', ref]);
    expect(twice.code).toBe(1);
    expect(twice.stderr).toMatch(/already resolved \(replayed\)/);
    await quiesce(nodes);
    expect(differing(await rows(a, t), await rows(b, t))).toEqual([]);
    const chk = await pgfleetMm(['check', '-c', cfg]);
    expect(chk.stdout).toMatch(new RegExp(`OK +${t.replace('.', '\\.')} `));
    await rep.stop();
    rep = undefined;
  });
});
