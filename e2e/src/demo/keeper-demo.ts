import { setTimeout as sleep } from 'node:timers/promises';
import { connect, redactConninfo } from '@pgfleet/connection';
import { type KeeperHandle, type KeeperStatus, parseConfig, startKeeper } from '@pgfleet/keeper';
import { freePort, type Sandbox } from '@pgfleet/sandbox';
import type { Logger } from 'pino';
import { eventually } from '../support/eventually.js';

type Say = (line?: string) => void;

const TOKEN = 'pgfleet-demo-token';

function line(s: KeeperStatus): string {
  const sync = s.sync.current === null ? '' : ` sync='${s.sync.current}'`;
  const lag = s.lagBytes === null ? '' : ` lag=${s.lagBytes}B`;
  const fenced = s.fenced ? ' FENCED' : '';
  return `${s.node.padEnd(8)} ${String(s.role).padEnd(8)} tl=${s.timeline ?? '?'}${sync}${lag}${fenced}  ${s.decision?.reason ?? ''}`;
}

/** One write on a fresh connection; true when it committed. */
async function writes(conninfo: string): Promise<boolean> {
  try {
    const c = await connect(conninfo, { connectTimeoutMs: 300, statementTimeoutMs: 1000 });
    try {
      await c.query('INSERT INTO demo_ledger DEFAULT VALUES');
      return true;
    } finally {
      c.end().catch(() => {});
    }
  } catch {
    return false;
  }
}

/**
 * The keeper half of the demo: primary + standby with a keeper each and a witness, sync
 * replication managed by the keepers; the primary's postmaster is killed and the standby
 * takes over.
 */
export async function keeperDemo(sb: Sandbox, logger: Logger, say: Say): Promise<void> {
  say('== keeper: primary + standby + witness ==');
  const primary = await sb.startNode('primary');
  await primary.query(
    'CREATE TABLE demo_ledger (id bigserial PRIMARY KEY, at timestamptz DEFAULT clock_timestamp())',
  );
  const standby = await sb.createStandby('standby', primary);
  for (const n of [primary, standby]) say(`  ${n.name.padEnd(8)} ${redactConninfo(n.conninfo())}`);
  const [pw, pp, ps] = [await freePort(), await freePort(), await freePort()];
  const common = {
    interval: '500ms',
    failures: 3,
    syncStandbyNames: 'ANY 1 (standby)',
    startupGrace: '10s',
    http: { token: TOKEN },
  };
  const keepers: KeeperHandle[] = [];
  try {
    keepers.push(
      await startKeeper(
        parseConfig({
          ...common,
          mode: 'witness',
          node: { name: 'witness' },
          members: {
            primary: primary.conninfo({ from: 'witness' }),
            standby: standby.conninfo({ from: 'witness' }),
          },
          http: { ...common.http, listen: `127.0.0.1:${pw}` },
        }),
        { logger },
      ),
    );
    const kp = await startKeeper(
      parseConfig({
        ...common,
        node: { name: 'primary', conninfo: primary.conninfo() },
        peer: {
          name: 'standby',
          conninfo: standby.conninfo({ from: 'keeper-p' }),
          keeperUrl: `http://127.0.0.1:${ps}`,
        },
        witness: { url: `http://127.0.0.1:${pw}` },
        http: { ...common.http, listen: `127.0.0.1:${pp}` },
      }),
      { logger },
    );
    const ks = await startKeeper(
      parseConfig({
        ...common,
        node: { name: 'standby', conninfo: standby.conninfo() },
        peer: {
          name: 'primary',
          conninfo: primary.conninfo({ from: 'keeper-s' }),
          keeperUrl: `http://127.0.0.1:${pp}`,
        },
        witness: { url: `http://127.0.0.1:${pw}` },
        http: { ...common.http, listen: `127.0.0.1:${ps}` },
      }),
      { logger },
    );
    keepers.push(kp, ks);
    await eventually(
      'keepers to reach steady state (sync on, standby streaming)',
      async () => [kp.status(), ks.status()] as const,
      ([p, s]) => p.sync.current === common.syncStandbyNames && s.streaming && s.sync.observation === 'sync',
      { timeoutMs: 30_000 },
    );
    say(`  keepers: primary ${kp.url}  standby ${ks.url}  (GET /primary, /replica, /status, /metrics)`);
    for (const s of [kp.status(), ks.status()]) say(`  ${line(s)}`);
    for (let i = 0; i < 50; i++) await primary.query('INSERT INTO demo_ledger DEFAULT VALUES');
    say('  50 rows committed synchronously on the primary');
    say();
    say('  killing the primary postmaster (SIGKILL)...');
    const t0 = performance.now();
    await primary.kill();
    await eventually(
      'a write to commit on the standby',
      () => writes(standby.conninfo()),
      (ok) => ok,
      {
        timeoutMs: 30_000,
        intervalMs: 10,
      },
    );
    const rto = performance.now() - t0;
    say(`  standby promoted and accepting writes ${rto.toFixed(0)} ms after the kill`);
    await sleep(200);
    say(`  ${line(ks.status())}`);
    const [row] = await standby.query<{ n: string }>('SELECT count(*) AS n FROM demo_ledger');
    say(`  rows on the new primary: ${row?.n} (50 acknowledged before the kill + 1 after: nothing lost)`);
  } finally {
    await Promise.all(keepers.map((k) => k.stop()));
  }
  say();
}
