import { loadavg } from 'node:os';
import { connect } from '@pgfleet/connection';
import type { KeeperHandle } from '@pgfleet/keeper';
import {
  checkMesh,
  initMesh,
  type ReplicatorHandle,
  type ResolvedConfig,
  resolveConfig,
  startReplicator,
} from '@pgfleet/multimaster';
import { Sandbox, type SandboxNode } from '@pgfleet/sandbox';
import pino from 'pino';
import {
  haNode,
  haStandbySettings,
  LEDGER_DDL,
  ledgerAudit,
  ledgerWriter,
  startKeepers,
  untilSyncHealthy,
  untilWritable,
} from '../multimaster/ha-fixture.js';
import { eventually } from '../support/eventually.js';
import { fmtMs, summarize } from './stats.js';

type Say = (line?: string) => void;

const logger = pino({ level: process.env.PGFLEET_BENCH_LOG ?? 'silent' }, pino.destination(2));

interface Round {
  /** SIGKILL of the node's primary → its standby accepts writes (keeper fast path). */
  promoted: number;
  /** Promotion → a row written on b then is on the new primary (edge b->x). */
  inbound: number;
  /** Promotion → a row written on the new primary then is on b and on c (edges x->b, x->c). */
  outbound: number;
  /** PostgreSQL 17: the same through a native subscription with a failover slot (c from x). */
  native: number | null;
  /** Promotion → the new primary's keeper answers 200 on /primary (where edges look first). */
  keeper: number;
}

/** Inserts into k.native (published natively to c) every 5 ms through x's conninfo. */
function nativeLoad(conninfo: string, base: number) {
  let stop = false;
  const done = (async () => {
    let c: Awaited<ReturnType<typeof connect>> | null = null;
    for (let id = base; !stop; id++) {
      try {
        if (!c) {
          c = await connect(conninfo, { connectTimeoutMs: 1000 });
          c.on('error', () => {});
        }
        await c.query('INSERT INTO k.native VALUES ($1)', [id]);
      } catch {
        await c?.end().catch(() => {});
        c = null;
        await new Promise((r) => setTimeout(r, 50));
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    await c?.end().catch(() => {});
  })();
  return {
    async stop() {
      stop = true;
      await done;
    },
  };
}

async function arrives(node: SandboxNode, table: string, id: number, from: number): Promise<number> {
  await eventually(
    `row ${id} on ${node.name}`,
    async () => (await node.query(`SELECT 1 FROM ${table} WHERE id = $1`, [id])).length === 1,
    (ok) => ok,
    { timeoutMs: 120_000, intervalMs: 5 },
  );
  return performance.now() - from;
}

/**
 * `npm run bench -- mesh-failover`: a 3-node mesh where node x is a keeper-protected primary
 * + standby (witness, sync replication), ledger writes on every node the whole time, and
 * BENCH_FAILOVERS (default 10) SIGKILLs of x's primary. Each round times the promotion and
 * how long after it the edges into and out of x flow again; after each round a new standby
 * is cloned from the new primary and the keepers and the replicator are started for the new
 * pair. At the end, ledgers and checksums: nothing lost, nothing twice. On PostgreSQL 17 a
 * native subscription with a failover slot (c from x, multi-host conninfo) is timed in the
 * same rounds as the reference for the outgoing side; 15 has no native way to follow.
 */
export async function meshFailoverBench(major: number | undefined, say: Say): Promise<void> {
  const failovers = Number(process.env.BENCH_FAILOVERS ?? 10);
  const sb = await Sandbox.create({ name: 'bench-mesh-failover', major });
  let keepers: { stopKeepers(): Promise<void>; keepers: KeeperHandle[] } | null = null;
  let rep: ReplicatorHandle | null = null;
  const writers: Array<ReturnType<typeof ledgerWriter>> = [];
  try {
    say(
      `== multimaster: a mesh node that fails over (PostgreSQL ${sb.major}, ${failovers} failovers under load) ==`,
    );
    let primary = await sb.startNode('x1', { logical: true, settings: { autovacuum: false } });
    const [b, c] = (await sb.startLogicalNodes(['b', 'c'], { autovacuum: false })) as [
      SandboxNode,
      SandboxNode,
    ];
    for (const n of [primary, b, c]) await n.query(LEDGER_DDL);
    const native = sb.major >= 17;
    if (native) {
      await primary.query(
        'CREATE TABLE k.native (id bigint PRIMARY KEY); CREATE PUBLICATION native_pub FOR TABLE k.native',
      );
      await c.query('CREATE TABLE k.native (id bigint PRIMARY KEY)');
    }
    let standby = await sb.createStandby('x2', primary, { settings: haStandbySettings(sb.major) });
    const configFor = (p: SandboxNode, s: SandboxNode, urls: Record<string, string>): ResolvedConfig =>
      resolveConfig({
        nodes: [
          haNode('x', [p, s], urls),
          { name: 'b', conninfo: b.conninfo() },
          { name: 'c', conninfo: c.conninfo() },
        ],
        tables: ['k.ledger'],
        http: { listen: false },
        statusIntervalMs: 200,
        reconnect: { baseDelayMs: 100, maxDelayMs: 1000 },
        ha: { retryMs: 100, checkIntervalMs: 200 },
      });
    keepers = await startKeepers(primary, standby, { logger, sync: true });
    let config = configFor(
      primary,
      standby,
      (keepers as Awaited<ReturnType<typeof startKeepers>>).keeperUrls,
    );
    await initMesh(config, { logger });
    rep = startReplicator(config, { logger });
    const xConninfo = () => config.nodes[0]?.conninfo as string;
    if (native) {
      const conn = `host=127.0.0.1,127.0.0.1 port=${primary.port},${standby.port} user=postgres password=${primary.facts().password} dbname=postgres target_session_attrs=read-write`;
      await c.query(
        `CREATE SUBSCRIPTION native_sub CONNECTION '${conn}' PUBLICATION native_pub WITH (failover = true, copy_data = false)`,
      );
    }
    // The writers follow x's primary through the multi-host conninfo of the first pair,
    // widened each round below.
    let wx = ledgerWriter('x', xConninfo(), 1_000_000, 5);
    writers.push(
      wx,
      ledgerWriter('b', b.conninfo(), 2_000_000, 5),
      ledgerWriter('c', c.conninfo(), 3_000_000, 5),
    );
    // On 17 the native subscription carries load too, so its failover is timed under load.
    let nativeWriter = native ? nativeLoad(xConninfo(), 5_000_000) : null;

    const rounds: Round[] = [];
    let probe = 9_000_000;
    for (let round = 1; round <= failovers; round++) {
      await eventually(
        `x failover-ready (round ${round})`,
        async () => {
          const st = rep?.status().nodes.find((n) => n.node === 'x');
          if (!st?.ready) return false;
          if (!native) return true;
          const s = await standby.query<{ ok: boolean }>(
            `SELECT count(*) FILTER (WHERE synced AND NOT temporary) = 1 AS ok FROM pg_replication_slots WHERE slot_name = 'native_sub'`,
          );
          return s[0]?.ok === true;
        },
        (ok) => ok,
        { timeoutMs: 180_000, intervalMs: 100 },
      );
      await new Promise((r) => setTimeout(r, 1000));
      if (keepers) await untilSyncHealthy({ keepers: keepers.keepers, primary, standby }, 120_000);
      const killedAt = performance.now();
      await primary.kill();
      await untilWritable(standby.conninfo(), 60_000);
      const promotedAt = performance.now();
      const ids = { in: ++probe, out: ++probe, native: ++probe };
      const keeperUrl = (keepers as Awaited<ReturnType<typeof startKeepers>>).keeperUrls[
        standby.name
      ] as string;
      const keeperSaysPrimary = eventually(
        'the new primary keeper to answer 200 on /primary',
        async () => (await fetch(`${keeperUrl}/primary`, { signal: AbortSignal.timeout(2000) })).status,
        (st) => st === 200,
        { timeoutMs: 60_000, intervalMs: 5 },
      ).then(() => performance.now() - promotedAt);
      const [inbound, out, nat] = await Promise.all([
        b
          .query(`INSERT INTO k.ledger VALUES ($1, 'probe', 0)`, [ids.in])
          .then(() => arrives(standby, 'k.ledger', ids.in, promotedAt)),
        standby
          .query(`INSERT INTO k.ledger VALUES ($1, 'probe', 0)`, [ids.out])
          .then(() =>
            Promise.all([
              arrives(b, 'k.ledger', ids.out, promotedAt),
              arrives(c, 'k.ledger', ids.out, promotedAt),
            ]),
          ),
        native
          ? standby
              .query('INSERT INTO k.native VALUES ($1)', [ids.native])
              .then(() => arrives(c, 'k.native', ids.native, promotedAt))
          : Promise.resolve(null),
      ]);
      const r: Round = {
        keeper: await keeperSaysPrimary,
        promoted: promotedAt - killedAt,
        inbound,
        outbound: Math.max(...out),
        native: nat,
      };
      rounds.push(r);
      say(
        `  failover ${round}: promoted ${fmtMs(r.promoted)} after the kill; after the promotion: keeper /primary 200 ${fmtMs(r.keeper)}, flowing again into x ${fmtMs(r.inbound)}, out of x ${fmtMs(r.outbound)}${r.native === null ? '' : `, native subscription ${fmtMs(r.native)}`}`,
      );
      if (round === failovers) break;
      // A new standby from the new primary, keepers and replicator for the new pair.
      await keepers?.stopKeepers();
      await rep?.stop();
      const next = await sb.createStandby(`x${round + 2}`, standby, {
        settings: haStandbySettings(sb.major),
      });
      primary = standby;
      standby = next;
      keepers = await startKeepers(primary, standby, { logger, sync: true });
      config = configFor(primary, standby, (keepers as Awaited<ReturnType<typeof startKeepers>>).keeperUrls);
      rep = startReplicator(config, { logger });
      // x's writers move to the new pair's conninfo (the acked ids stay in the ledger).
      await nativeWriter?.stop();
      nativeWriter = native ? nativeLoad(xConninfo(), 5_000_000 + round * 100_000) : null;
      await wx.stop();
      wx = ledgerWriter('x', xConninfo(), 1_000_000 + round * 100_000, 5);
      writers.push(wx);
      if (native) {
        const conn = `host=127.0.0.1,127.0.0.1 port=${primary.port},${standby.port} user=postgres password=${primary.facts().password} dbname=postgres target_session_attrs=read-write`;
        await c.query(`ALTER SUBSCRIPTION native_sub CONNECTION '${conn}'`);
      }
    }
    for (const w of writers) await w.stop();
    await nativeWriter?.stop();
    const live = [standby, b, c];
    await eventually(
      'the mesh to drain',
      async () => {
        const checks = await checkMesh(config);
        return checks.every((t) => t.equal);
      },
      (ok) => ok,
      { timeoutMs: 180_000, intervalMs: 500 },
    );
    let lost = 0;
    let invented = 0;
    let conflicts = 0;
    const probes = Array.from({ length: probe - 9_000_000 }, (_, i) => 9_000_001 + i);
    for (const n of live) {
      const a = await ledgerAudit((sql) => n.query(sql), writers, probes);
      lost += a.lost.length;
      invented += a.invented.length;
      conflicts += Number(
        (await n.query<{ n: string }>('SELECT count(*) AS n FROM pgfleet.conflicts'))[0]?.n ?? 0,
      );
    }
    const acked = writers.reduce((s, w) => s + w.acked.length, 0);
    const fmt = (xs: number[]) => {
      const s = summarize(xs);
      return `min ${fmtMs(s.min)} / median ${fmtMs(s.median)} / max ${fmtMs(s.max)}`;
    };
    const worst = rounds.map((r) => Math.max(r.inbound, r.outbound));
    say('');
    say(`  kill -> promoted:                 ${fmt(rounds.map((r) => r.promoted))}`);
    say(`  promoted -> keeper /primary 200:  ${fmt(rounds.map((r) => r.keeper))}`);
    say(`  promoted -> edges into x flowing: ${fmt(rounds.map((r) => r.inbound))}`);
    say(`  promoted -> edges out of x flowing: ${fmt(rounds.map((r) => r.outbound))}`);
    say(
      `  promoted -> every edge flowing:   ${fmt(worst)}  (target <= 2000 ms) ${worst.every((x) => x <= 2000) ? 'OK' : 'BELOW TARGET'}`,
    );
    if (native) {
      const nat = rounds.map((r) => r.native as number);
      say(`  native subscription (failover slot): ${fmt(nat)}`);
      say(
        `  ratio native/pgfleet, outgoing side (median): ${(summarize(nat).median / summarize(rounds.map((r) => r.outbound)).median).toFixed(2)}x`,
      );
    } else say('  native reference: none on PostgreSQL 15 (slots do not survive a failover)');
    say(
      `  ${failovers} failovers, ${acked.toLocaleString('en-US')} acknowledged writes: lost ${lost}, rows nobody wrote ${invented}, applied twice (conflicts) ${conflicts}; checksums equal: yes ${lost + invented + conflicts === 0 ? 'OK' : 'FAILED'}`,
    );
    say(`  (machine load average at the end: ${loadavg()[0]?.toFixed(2)}; other jobs share it)`);
  } finally {
    for (const w of writers) await w.stop().catch(() => {});
    await rep?.stop();
    await keepers?.stopKeepers();
    await sb.destroy();
  }
}
