import { checkMesh, initMesh, resolveConfig, startReplicator } from '@pgfleet/multimaster';
import type { Sandbox } from '@pgfleet/sandbox';
import type { Logger } from 'pino';
import {
  haNode,
  LEDGER_DDL,
  ledgerAudit,
  ledgerWriter,
  startHaPair,
  untilSyncHealthy,
  untilWritable,
} from '../multimaster/ha-fixture.js';
import { eventually } from '../support/eventually.js';

type Say = (line?: string) => void;

/**
 * The mesh through a failover of one of its nodes: node x is a keeper-protected primary +
 * standby (witness, synchronous replication), y and z single servers; writes go on every
 * node the whole time while x's primary is SIGKILLed, the keeper promotes its standby, and
 * the replicator follows by itself. The ledgers and checksums at the end show that nothing
 * acknowledged was lost and nothing applied twice.
 */
export async function meshFailoverDemo(sb: Sandbox, logger: Logger, say: Say): Promise<void> {
  say('== multimaster: a mesh node that fails over ==');
  const pair = await startHaPair(sb, ['x1', 'x2'], { logger, sync: true });
  const [y, z] = await sb.startLogicalNodes(['y', 'z'], { autovacuum: false });
  if (!y || !z) throw new Error('sandbox started fewer nodes than asked');
  for (const n of [pair.primary, y, z]) await n.query(LEDGER_DDL);
  const config = resolveConfig({
    nodes: [
      haNode('x', [pair.primary, pair.standby], pair.keeperUrls),
      { name: 'y', conninfo: y.conninfo() },
      { name: 'z', conninfo: z.conninfo() },
    ],
    tables: ['k.ledger'],
    http: { listen: false },
    statusIntervalMs: 200,
    reconnect: { baseDelayMs: 100, maxDelayMs: 1000 },
    ha: { retryMs: 100, checkIntervalMs: 200 },
  });
  await initMesh(config, { logger });
  const replicator = startReplicator(config, { logger });
  const writers = [
    ledgerWriter('x', config.nodes[0]?.conninfo as string, 1_000_000, 10),
    ledgerWriter('y', y.conninfo(), 2_000_000, 10),
    ledgerWriter('z', z.conninfo(), 3_000_000, 10),
  ];
  try {
    const x = await eventually(
      'node x failover-ready',
      async () => replicator.status().nodes.find((n) => n.node === 'x'),
      (n) => n?.ready === true,
      { timeoutMs: 120_000, intervalMs: 100 },
    );
    say(
      `  node x = x1 (primary) + x2 (standby) with keepers and a witness; y, z single servers; writes on all three`,
    );
    say(
      `  x is failover-ready: primary ${x?.primary}, outgoing edges survive by ${x?.procedure === 'failover-slots' ? 'failover slots (PostgreSQL 17+)' : 're-sync of the window (PostgreSQL 15/16)'}`,
    );
    await untilSyncHealthy(pair, 120_000);
    say('  SIGKILL of x1...');
    const killedAt = performance.now();
    await pair.primary.kill();
    await untilWritable(pair.standby.conninfo(), 60_000);
    const promotedAt = performance.now();
    say(`  the keeper promoted x2 ${(promotedAt - killedAt).toFixed(0)} ms after the kill`);
    await eventually(
      'every edge of x flowing from x2',
      async () => replicator.status().edges,
      (edges) =>
        edges
          .filter((e) => e.source === 'x' || e.target === 'x')
          .every(
            (e) => e.state === 'streaming' && (e.source === 'x' ? e.sourceServer : e.targetServer) === 'x2',
          ),
      { timeoutMs: 120_000, intervalMs: 20 },
    );
    say(
      `  every edge into and out of x streams from x2 again, ${(performance.now() - promotedAt).toFixed(0)} ms after the promotion`,
    );
    await new Promise((r) => setTimeout(r, 1000));
    for (const w of writers) await w.stop();
    const checks = await eventually(
      'the mesh to converge',
      () => checkMesh(config),
      (c) => c.every((t) => t.equal),
      { timeoutMs: 120_000, intervalMs: 200 },
    );
    for (const t of checks)
      for (const [name, v] of Object.entries(t.nodes))
        say(`    ${t.table} on ${name}: ${v?.rows} rows, checksum ${v?.checksum}`);
    const acked = writers.reduce((n, w) => n + w.acked.length, 0);
    const inDoubt = writers.reduce((n, w) => n + w.inDoubt.length, 0);
    let lost = 0;
    for (const n of [pair.standby, y, z])
      lost += (await ledgerAudit((sql) => n.query(sql), writers)).lost.length;
    say(
      `  ${acked} acknowledged writes (${inDoubt} more in doubt: cut off by the kill): ${lost} missing on any node; every table equal (pgfleet-mm check)`,
    );
  } finally {
    for (const w of writers) await w.stop().catch(() => {});
    await replicator.stop();
    await pair.stopKeepers();
  }
  say();
}
