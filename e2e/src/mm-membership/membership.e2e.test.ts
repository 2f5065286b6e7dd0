import {
  type AddNodeProgress,
  addNode,
  checkMesh,
  MembershipError,
  type ReplicatorHandle,
  removeNode,
  startReplicator,
} from '@pgfleet/multimaster';
import type { Sandbox, SandboxNode } from '@pgfleet/sandbox';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  captureLogs,
  initAndStart,
  meshConfig,
  onAll,
  quiesce,
  sleep,
  startNodes,
} from '../multimaster/fixture.js';
import { eventually } from '../support/eventually.js';

const DDL = `
  CREATE SCHEMA app;
  CREATE TABLE app.items (id bigint PRIMARY KEY, origin text NOT NULL, v int NOT NULL, note text);
  CREATE TABLE app.events (id bigint PRIMARY KEY, origin text NOT NULL, payload jsonb, at timestamptz(6));`;

/** Inserts, updates and deletes rows in its own key range until stopped; returns rows inserted. */
function writer(node: SandboxNode, base: number) {
  let stop = false;
  let next = base;
  const c = new pg.Client({ connectionString: node.uri() });
  c.on('error', () => {});
  const done = (async () => {
    await c.connect();
    while (!stop) {
      const id = next++;
      await c.query('BEGIN');
      await c.query('INSERT INTO app.items VALUES ($1, $2, 0, $3)', [id, node.name, `row ${id}`]);
      await c.query(`INSERT INTO app.events VALUES ($1, $2, $3, clock_timestamp())`, [
        id,
        node.name,
        JSON.stringify({ id, n: [1, 2, { x: 'y' }] }),
      ]);
      await c.query('COMMIT');
      if (id % 3 === 0) await c.query('UPDATE app.items SET v = v + 1 WHERE id = $1', [id - 1]);
      if (id % 7 === 0) await c.query('DELETE FROM app.items WHERE id = $1', [id - 2]);
      await sleep(3);
    }
    await c.end();
  })();
  return {
    /** Transactions started so far. */
    written: () => next - base,
    async stop(): Promise<number> {
      stop = true;
      await done;
      return next - base;
    },
  };
}

/** Names of pgfleet slots, publications and origins on a node that mention `node`. */
async function objectsOf(n: SandboxNode, node: string): Promise<string[]> {
  const rows = await n.query<{ name: string }>(
    `SELECT slot_name AS name FROM pg_replication_slots WHERE slot_name LIKE 'pgfleet\\_%' AND (slot_name LIKE $1 OR slot_name LIKE $2)
     UNION ALL SELECT pubname FROM pg_publication WHERE pubname LIKE $1 OR pubname LIKE $2
     UNION ALL SELECT roname FROM pg_replication_origin WHERE roname = $3
     ORDER BY 1`,
    [`pgfleet\\_${node}\\_%`, `%\\_${node}`, `pgfleet_${node}`],
  );
  return rows.map((r) => r.name);
}

/**
 * For a failure message, per node: replication origins and their progress, named sessions,
 * advisory locks and their holders, slots, and the last lines of the server log.
 */
async function serverState(nodes: SandboxNode[]): Promise<string> {
  const out: string[] = [];
  for (const n of nodes) {
    const facts = await n
      .query(
        `SELECT 'origin ' || o.roname || ' at ' || coalesce(s.remote_lsn::text, '-') AS f
           FROM pg_replication_origin o LEFT JOIN pg_replication_origin_status s ON s.local_id = o.roident
         UNION ALL SELECT 'session ' || pid || ' ' || application_name || ' ' || coalesce(state, '')
           FROM pg_stat_activity WHERE application_name <> '' AND pid <> pg_backend_pid()
         UNION ALL SELECT 'lock ' || l.objid || ' pid ' || l.pid || ' ' || coalesce(a.application_name, '')
           FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
          WHERE l.locktype = 'advisory' AND l.granted
         UNION ALL SELECT 'slot ' || slot_name || ' active ' || active || ' confirmed ' || coalesce(confirmed_flush_lsn::text, '-')
           FROM pg_replication_slots`,
      )
      .then((r) => r.map((x) => String(x.f)).join('; '))
      .catch((e: Error) => `unreadable: ${e.message}`);
    out.push(`--- ${n.name}: ${facts}\n${n.logTail(15)}`);
  }
  return out.join('\n');
}

describe('multimaster membership: add-node under load, remove-node', () => {
  let sb: Sandbox;
  let a: SandboxNode;
  let b: SandboxNode;
  let c: SandboxNode;
  let d: SandboxNode;
  let rep: ReplicatorHandle | undefined;
  const logs = captureLogs();

  beforeAll(async () => {
    let nodes: SandboxNode[];
    ({ sb, nodes } = await startNodes(['a', 'b', 'c', 'd']));
    [a, b, c, d] = nodes as [SandboxNode, SandboxNode, SandboxNode, SandboxNode];
    await onAll(nodes, DDL);
  });
  afterAll(async () => {
    await rep?.stop();
    await sb?.destroy();
  });

  it('refuses to add a node while the source lags another node, and leaves nothing behind', async () => {
    const three = meshConfig([a, b, c], { tables: ['app.*'] });
    rep = await initAndStart(three, logs.logger);
    await rep.stop();
    rep = undefined;
    // Written on b while no replicator runs: a (the copy source) does not have it.
    await b.query(`INSERT INTO app.items SELECT g, 'b', 0, 'early' FROM generate_series(1, 50) g`);
    const err = await addNode(meshConfig([a, b, c, d], { tables: ['app.*'] }), 'd', {
      logger: logs.logger,
      catchUpTimeoutMs: 1500,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MembershipError);
    expect(err).toMatchObject({
      code: 'ADD_NODE_SOURCE_BEHIND',
      message: expect.stringMatching(
        /a has not applied b's changes .*50 transaction|a has not applied b's changes/,
      ),
    });
    expect((err as Error).message).toContain('1 transaction(s) not yet applied');
    for (const n of [a, b, c, d]) expect(await objectsOf(n, 'd'), n.name).toEqual([]);
    expect(await d.query('SELECT count(*)::int AS n FROM app.items')).toEqual([{ n: 0 }]);
    expect(await d.query(`SELECT count(*)::int AS n FROM pgfleet.membership`)).toEqual([{ n: 0 }]);
  });

  it('adds a fourth node while three nodes write and the replicator already drives its edges: every row once, checksums equal', async () => {
    const three = meshConfig([a, b, c], { tables: ['app.*'] });
    const four = meshConfig([a, b, c, d], { tables: ['app.*'] });
    rep = startReplicator(three, { logger: logs.logger });
    const writers = [writer(a, 1_000_000), writer(b, 2_000_000), writer(c, 3_000_000)];
    await sleep(1000);
    // The operator restarts `run` with d in the config first: edges into d wait (no slot,
    // origins held by add-node) until d has joined, then start where the copy ended.
    await rep.stop();
    rep = startReplicator(four, { logger: logs.logger });
    await sleep(500);

    const phases: AddNodeProgress[] = [];
    const report = await addNode(four, 'd', { logger: logs.logger, onProgress: (p) => phases.push(p) });
    expect(report).toMatchObject({ node: 'd', source: 'a', alreadyJoined: false });
    expect(Object.keys(report.startPositions).sort()).toEqual(['a', 'b', 'c']);
    expect(new Set(phases.map((p) => p.phase))).toEqual(
      new Set(['check', 'prepare', 'catch-up', 'snapshot', 'copy', 'finish']),
    );
    expect(report.tables.reduce((n, t) => n + t.rows, 0)).toBeGreaterThan(100);
    // The apply of b → a and c → a was paused (origins held) and came back by itself.
    expect(logs.lines.some((l) => l.msg === 'pausing apply session that holds the origin')).toBe(true);

    writers.push(writer(d, 4_000_000));
    // Every writer, d's too, keeps writing through the join (on a loaded machine a fixed
    // sleep may end before d's writer got going).
    await eventually(
      'every writer wrote more than 20 transactions',
      async () => writers.map((w) => w.written()),
      (ns) => ns.every((n) => n > 21),
      { timeoutMs: 60_000 },
    );
    const inserted = await Promise.all(writers.map((w) => w.stop()));
    expect(inserted.every((n) => n > 20)).toBe(true);

    await quiesce([a, b, c, d], 90_000).catch(async (err: Error) => {
      // What the replicator said last, for an edge that stopped confirming.
      const tail = logs.lines
        .filter((l) => Number(l.level) >= 40)
        .slice(-25)
        .map((l) => `${String(l.edge ?? '')} ${String(l.msg)} ${l.err ? JSON.stringify(l.err) : ''}`)
        .join('\n');
      throw new Error(
        `${err.message}\nreplicator warnings and errors, last 25:\n${tail}\n${await serverState([a, b, c, d])}`,
      );
    });
    const checks = await checkMesh(four);
    for (const t of checks) expect(t, t.table).toMatchObject({ equal: true, differingKeys: [] });
    const events = await d.query<{ origin: string; n: number }>(
      'SELECT origin, count(*)::int AS n FROM app.events GROUP BY 1 ORDER BY 1',
    );
    expect(events.map((r) => r.n)).toEqual([inserted[0], inserted[1], inserted[2], inserted[3]]);
    // Nothing arrived twice (insert_exists) or found its row missing on the new node.
    expect(await d.query('SELECT count(*)::int AS n FROM pgfleet.conflicts')).toEqual([{ n: 0 }]);
    expect(await d.query('SELECT count(*)::int AS n FROM pgfleet.dead_letters')).toEqual([{ n: 0 }]);
  });

  it('removes a node from the running mesh; the other three keep converging', async () => {
    const four = meshConfig([a, b, c, d], { tables: ['app.*'] });
    const report = await removeNode(four, 'b', { logger: logs.logger });
    expect(report).toMatchObject({ node: 'b', complete: true, unreachable: [] });
    for (const n of [a, c, d]) {
      expect(await objectsOf(n, 'b'), n.name).toEqual([]);
      expect(await n.query(`SELECT count(*)::int AS n FROM pgfleet.nodes WHERE name = 'b'`)).toEqual([
        { n: 0 },
      ]);
    }
    expect(await b.query(`SELECT count(*)::int AS n FROM pg_replication_slots`)).toEqual([{ n: 0 }]);
    expect(await b.query(`SELECT count(*)::int AS n FROM pg_replication_origin`)).toEqual([{ n: 0 }]);

    await rep?.stop();
    const acd = meshConfig([a, c, d], { tables: ['app.*'] });
    rep = startReplicator(acd, { logger: logs.logger });
    const writers = [writer(a, 5_000_000), writer(c, 6_000_000), writer(d, 7_000_000)];
    await sleep(1000);
    await Promise.all(writers.map((w) => w.stop()));
    await quiesce([a, c, d], 60_000).catch(async (err: Error) => {
      throw new Error(`${err.message}\n${await serverState([a, c, d])}`);
    });
    for (const t of await checkMesh(acd)) expect(t, t.table).toMatchObject({ equal: true });
    // b no longer receives anything.
    expect(await b.query(`SELECT count(*)::int AS n FROM app.items WHERE id >= 5000000`)).toEqual([{ n: 0 }]);
  });

  it('remove-node names an unreachable node and cleans the reachable ones', async () => {
    await rep?.stop();
    rep = undefined;
    await c.stop('fast');
    try {
      const report = await removeNode(meshConfig([a, c, d], { tables: ['app.*'] }), 'd', {
        logger: logs.logger,
        connectTimeoutMs: 2000,
      });
      expect(report).toMatchObject({ complete: false, unreachable: ['c'] });
      expect(report.nodes.find((n) => n.node === 'c')).toMatchObject({
        reachable: false,
        error: expect.any(String),
      });
      expect(await objectsOf(a, 'd')).toEqual([]);
    } finally {
      await c.start();
    }
    // Once c is back, running it again finishes the job.
    const again = await removeNode(meshConfig([a, c, d], { tables: ['app.*'] }), 'd', {
      logger: logs.logger,
    });
    expect(again).toMatchObject({ complete: true });
    expect(again.nodes.find((n) => n.node === 'c')?.dropped).toEqual({
      slots: ['pgfleet_c_d'],
      publications: ['pgfleet_c_d'],
      origins: ['pgfleet_d'],
    });
  });
});
