import {
  checkMesh,
  initMesh,
  type ReplicatorHandle,
  type ResolvedConfig,
  resolveConfig,
  startReplicator,
} from '@pgfleet/multimaster';
import { Sandbox, type SandboxNode } from '@pgfleet/sandbox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../support/eventually.js';
import { captureLogs, count, onAll, quiesce, sleep } from './fixture.js';
import {
  type HaPair,
  haNode,
  haStandbySettings,
  LEDGER_DDL,
  ledgerAudit,
  ledgerWriter,
  nodeConninfo,
  startHaPair,
  untilSyncHealthy,
  untilWritable,
} from './ha-fixture.js';

/**
 * Issue 11: a mesh node that is a keeper-protected primary + standby survives the loss of
 * its primary. Node `a` is a1 (primary) + a2 (standby) with keepers and a witness; b and c
 * are single servers. Writes go on every node the whole time; a1's postmaster is SIGKILLed;
 * the keeper promotes a2; the replicator finds it by itself; edges into a resume from a2's
 * origin progress, edges out of a from a2's slots (PostgreSQL 17: failover slots) or from
 * slots re-created with a re-sync of the window (15). Ledgers prove that no acknowledged
 * change is lost and none is applied twice; `check` proves the tables equal.
 */

const TABLES = ['k.ledger'];

function meshConfigFor(nodes: Array<Record<string, unknown>>): ResolvedConfig {
  return resolveConfig({
    nodes,
    tables: TABLES,
    http: { listen: false },
    statusIntervalMs: 200,
    reconnect: { baseDelayMs: 100, maxDelayMs: 1000 },
    ha: { retryMs: 100, checkIntervalMs: 200 },
  });
}

/** A row written on `from` after `t0` reaches `to` (both as conninfo-less query functions). */
async function travelTime(
  write: (id: number) => Promise<unknown>,
  seen: (id: number) => Promise<boolean>,
  id: number,
): Promise<number> {
  const t0 = performance.now();
  await write(id);
  await eventually(
    `row ${id} to arrive`,
    () => seen(id),
    (ok) => ok,
    { timeoutMs: 60_000, intervalMs: 10 },
  );
  return performance.now() - t0;
}

describe('multimaster: a mesh node that is a primary + standby', () => {
  let sb: Sandbox;
  let pair: HaPair;
  let b: SandboxNode;
  let c: SandboxNode;
  let config: ResolvedConfig;
  let rep: ReplicatorHandle | null = null;
  const logs = captureLogs('info');

  beforeAll(async () => {
    sb = await Sandbox.create({ name: 'mm-ha' });
    pair = await startHaPair(sb, ['a1', 'a2'], { logger: logs.logger, sync: true });
    [b, c] = (await sb.startLogicalNodes(['b', 'c'], { autovacuum: false })) as [SandboxNode, SandboxNode];
    await onAll([pair.primary, b, c], LEDGER_DDL);
    config = meshConfigFor([
      haNode('a', [pair.primary, pair.standby], pair.keeperUrls),
      { name: 'b', conninfo: b.conninfo() },
      { name: 'c', conninfo: c.conninfo() },
    ]);
    await initMesh(config, { logger: logs.logger });
  });

  afterAll(async () => {
    await rep?.stop();
    await pair?.stopKeepers();
    await sb?.destroy();
  });

  it('SIGKILL of the node primary under writes on every node: the keeper promotes, the mesh follows, nothing lost or applied twice', async () => {
    rep = startReplicator(config, { logger: logs.logger });
    const a = nodeConninfo(config, 'a');
    const writers = [
      ledgerWriter('a', a, 1_000_000),
      ledgerWriter('b', b.conninfo(), 2_000_000),
      ledgerWriter('c', c.conninfo(), 3_000_000),
    ];
    // Failover-ready first: on 17 the standby holds every outgoing slot, synchronized and
    // persistent (a slot still temporary would be dropped at promotion).
    const ready = await eventually(
      'node a failover-ready',
      async () => rep?.status().nodes.find((n) => n.node === 'a'),
      (n) => n?.ready === true,
      { timeoutMs: 90_000, intervalMs: 100 },
    );
    expect(ready?.procedure).toBe(sb.major >= 17 ? 'failover-slots' : 'resync');
    expect(ready?.primary).toBe('a1');
    await sleep(1500);
    await untilSyncHealthy(pair);

    await pair.primary.kill();
    const killedAt = performance.now();
    await untilWritable(pair.standby.conninfo());
    const promotedAfter = performance.now() - killedAt;

    // Flowing again: a row written on b after the promotion reaches a2 (edge b->a), one
    // written on a2 reaches b and c (edges a->b, a->c).
    const q = (n: SandboxNode) => (id: number) =>
      n.query('SELECT 1 FROM k.ledger WHERE id = $1', [id]).then((r) => r.length === 1);
    const [inbound, outB, outC] = await Promise.all([
      travelTime(
        (id) => b.query(`INSERT INTO k.ledger VALUES ($1, 'probe', 0)`, [id]),
        q(pair.standby),
        9_000_001,
      ),
      travelTime(
        (id) => pair.standby.query(`INSERT INTO k.ledger VALUES ($1, 'probe', 0)`, [id]),
        q(b),
        9_000_002,
      ),
      travelTime(
        (id) => pair.standby.query(`INSERT INTO k.ledger VALUES ($1, 'probe', 0)`, [id]),
        q(c),
        9_000_003,
      ),
    ]);
    const timings = { promotedAfterKill: promotedAfter, inbound, outB, outC };
    console.log(`PostgreSQL ${sb.major}: failover timings (ms) ${JSON.stringify(timings)}`);

    await sleep(1500);
    for (const w of writers) await w.stop();
    const live = [pair.standby, b, c];
    await quiesce(live, 60_000);

    const st = rep.status();
    for (const e of st.edges.filter((x) => x.source === 'a')) expect(e.sourceServer, e.edge).toBe('a2');
    for (const e of st.edges.filter((x) => x.target === 'a')) expect(e.targetServer, e.edge).toBe('a2');
    expect(writers[0]?.acked.length).toBeGreaterThan(50);
    expect(writers[0]?.reconnects).toBeGreaterThanOrEqual(0);

    const checks = await checkMesh(config);
    expect(checks.map((t) => [t.table, t.equal, t.differingKeys])).toEqual([['k.ledger', true, []]]);
    for (const n of live) {
      const audit = await ledgerAudit((sql) => n.query(sql), writers, [9_000_001, 9_000_002, 9_000_003]);
      expect(audit.lost, `${n.name}: acknowledged rows missing`).toEqual([]);
      expect(audit.invented, `${n.name}: rows nobody wrote`).toEqual([]);
      // A transaction applied twice would have met its own row: insert_exists.
      expect(await count(n, 'pgfleet.conflicts'), `${n.name}: conflicts`).toBe(0);
    }
    // How the outgoing edges got to a2: their failover slots (17), or a re-sync per peer (15).
    const resyncs = await b.query<{ edge: string; rows_failed: number }>(
      'SELECT edge, rows_failed FROM pgfleet.resyncs',
    );
    if (sb.major >= 17) expect(resyncs).toEqual([]);
    else expect(resyncs).toEqual([{ edge: 'a_b', rows_failed: 0 }]);
    expect(logs.duplicated).toEqual([]);
  });

  it('acks never pass what the standby has, and no peer receives what the standby lacks: a failover to a lagging standby loses nothing the mesh kept', async () => {
    await rep?.stop();
    rep = null;
    await pair.stopKeepers();
    // a2 runs alone now; give it a standby a3 (asynchronous, no keepers: promoted by hand).
    const a2 = pair.standby;
    const a3 = await sb.createStandby('a3', a2, { settings: haStandbySettings(sb.major) });
    const cfg = meshConfigFor([
      haNode('a', [a2, a3]),
      { name: 'b', conninfo: b.conninfo() },
      { name: 'c', conninfo: c.conninfo() },
    ]);
    rep = startReplicator(cfg, { logger: logs.logger });
    await eventually(
      'node a failover-ready with a3',
      async () => rep?.status().nodes.find((n) => n.node === 'a'),
      (n) => n?.ready === true,
      { timeoutMs: 90_000, intervalMs: 100 },
    );

    // a3 stops receiving WAL (no primary_conninfo: its walreceiver stops, its slot on a2
    // stays where it was): a2 runs on alone, and whatever it commits now a3 will never have.
    await a3.query(`ALTER SYSTEM SET primary_conninfo = ''`);
    await a3.query('SELECT pg_reload_conf()');
    await eventually(
      'a3 to stop streaming',
      () =>
        a2.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_stat_replication WHERE application_name = 'a3'`,
        ),
      (r) => r[0]?.n === 0,
      { timeoutMs: 30_000 },
    );
    // Inbound: applied on a2 (apply sessions commit with synchronous_commit = off), but
    // a3 cannot have it: b's slot must not be confirmed past it.
    await b.query(`INSERT INTO k.ledger VALUES (8000001, 'inbound', 0)`);
    await eventually(
      'row on a2',
      () => count(a2, 'k.ledger', 'id = 8000001'),
      (n) => n === 1,
      { timeoutMs: 30_000 },
    );
    // Outbound: committed on a2, which a3 cannot have: no peer may receive it.
    await a2.query(`INSERT INTO k.ledger VALUES (8000002, 'outbound', 0)`);
    await sleep(2000);
    expect(await count(b, 'k.ledger', 'id = 8000002'), 'b received what the standby lacks').toBe(0);
    expect(await count(c, 'k.ledger', 'id = 8000002'), 'c received what the standby lacks').toBe(0);
    await a2.kill();
    await a3.query('SELECT pg_promote(true)');
    // What only a2 had is gone with it, everywhere; the inbound row comes again from b,
    // whose slot was never confirmed past it (without the bound: a gap, never filled).
    await eventually(
      'row 8000001 on a3',
      () => count(a3, 'k.ledger', 'id = 8000001'),
      (n) => n === 1,
      {
        timeoutMs: 30_000,
      },
    );
    const w = ledgerWriter('a', nodeConninfo(cfg, 'a'), 4_000_000);
    await sleep(1500);
    await w.stop();
    await quiesce([a3, b, c], 60_000);
    const checks = await checkMesh(cfg);
    expect(checks.map((t) => [t.table, t.equal, t.differingKeys])).toEqual([['k.ledger', true, []]]);
    for (const n of [a3, b, c]) {
      expect(await count(n, 'k.ledger', 'id = 8000002'), n.name).toBe(0);
      expect((await ledgerAudit((sql) => n.query(sql), [w])).lost, n.name).toEqual([]);
      expect(await count(n, 'pgfleet.conflicts'), `${n.name}: conflicts`).toBe(0);
    }
  });
});
