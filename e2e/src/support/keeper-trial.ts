import { freePort, Sandbox, type SandboxNode } from '@pgfleet/sandbox';
import { type HaproxyHandle, startHaproxy } from './haproxy.js';
import { type KeeperProcess, keeperGet, startKeeperProcess } from './keeper-process.js';
import { sleep, until } from './until.js';
import {
  firstAck,
  longestGap,
  lostAcknowledged,
  misrouted,
  type TwoWriters,
  twoWriterMoments,
  type WriteAttempt,
} from './write-ledger.js';
import { LEDGER_DDL, startWriteWatch, type WriteTarget } from './write-watch.js';

/**
 * One adversarial failover trial, shared by the e2e suite (one trial per fault) and the bench
 * (ten): a fresh primary `a` + standby `b` from initdb and a base backup, a keeper process
 * beside each (and a witness), a real HAProxy in front with Patroni's documented check and
 * with HAProxy's plain `option httpchk`, a client writing through each frontend and a
 * watcher writing on each server directly, all every 50 ms on held connections. Then one
 * fault, and what the ledgers prove.
 */

export type FaultName =
  | 'postmaster-kill'
  | 'postmaster-stop'
  | 'postmaster-stop-async'
  | 'postmaster-stop-2node'
  | 'server-freeze'
  | 'host-freeze'
  | 'keeper-kill'
  | 'wrong-password-standby'
  | 'wrong-port-standby'
  | 'wrong-password-primary'
  | 'wrong-port-primary';

export interface FaultSpec {
  /** synchronous_standby_names 'ANY 1 (a, b)' (else an asynchronous pair). */
  sync: boolean;
  witness: boolean;
  /** The standby must take over (else the primary must stay). */
  failover: boolean;
  what: string;
}

export const FAULTS: Record<FaultName, FaultSpec> = {
  'postmaster-kill': { sync: true, witness: true, failover: true, what: 'postmaster SIGKILL' },
  'postmaster-stop': {
    sync: true,
    witness: true,
    failover: true,
    what: 'postmaster-only SIGSTOP, sessions alive and writing (sync)',
  },
  'postmaster-stop-async': {
    sync: false,
    witness: true,
    failover: true,
    what: 'postmaster-only SIGSTOP, sessions alive and writing (async)',
  },
  'postmaster-stop-2node': {
    sync: true,
    witness: false,
    failover: true,
    what: 'postmaster-only SIGSTOP, sessions alive and writing (sync, no witness)',
  },
  'server-freeze': {
    sync: true,
    witness: true,
    failover: true,
    what: 'whole server SIGSTOP 4 s, then SIGCONT (keeper alive)',
  },
  'host-freeze': {
    sync: true,
    witness: true,
    failover: true,
    what: 'whole host (server + keeper) SIGSTOP 4 s, then SIGCONT',
  },
  'keeper-kill': {
    sync: true,
    witness: true,
    failover: false,
    what: "primary's keeper SIGKILL, restarted 1 s later",
  },
  'wrong-password-standby': {
    sync: true,
    witness: false,
    failover: false,
    what: "wrong password in the standby keeper's peer.conninfo (--force, no witness)",
  },
  'wrong-port-standby': {
    sync: true,
    witness: false,
    failover: false,
    what: "wrong port in the standby keeper's peer.conninfo (--force, no witness)",
  },
  'wrong-password-primary': {
    sync: true,
    witness: false,
    failover: false,
    what: "wrong password in the primary keeper's peer.conninfo (--force, no witness)",
  },
  'wrong-port-primary': {
    sync: true,
    witness: false,
    failover: false,
    what: "wrong port in the primary keeper's peer.conninfo (--force, no witness)",
  },
};

export interface TrialResult {
  fault: FaultName;
  major: number;
  /** The standby took over. */
  failedOver: boolean;
  /** Fault to the first write acknowledged through HAProxy (Patroni's check) by the new primary. */
  ttfwMs: number | null;
  /** Fault to HAProxy (Patroni's check) marking the new primary UP, polled every 20 ms. */
  upMs: number | null;
  /** Longest time without an acknowledged write through HAProxy, from the fault to the end. */
  gapMs: number;
  twoWriters: TwoWriters;
  acked: number;
  lostAcked: number;
  /**
   * How long before the old primary's last acknowledged write the earliest lost one was
   * acknowledged: the loss window (0 when nothing was lost).
   */
  lossWindowMs: number;
  /** Writes HAProxy sent to a server that refused them as read-only (standby, fenced). */
  misrouted: { patroni: number; plain: number };
  serverStops: number;
  promotions: number;
  notes: string[];
  logs: Record<string, string[]>;
  attempts: WriteAttempt[];
}

export interface TrialOptions {
  /** Run the built keeper (apps/keeper/dist) instead of the sources. */
  dist?: boolean;
  echo?: boolean;
  /** Record when /primary and HAProxy's view change (ms after the fault), in `notes`. */
  trace?: boolean;
  /** PostgreSQL major (default: PGFLEET_PG_VERSION, else the newest found). */
  major?: number;
}

/** Polls what HAProxy (and with `keepers`, their /primary) says, and notes each change. */
function tracer(haproxy: HaproxyHandle, keepers: Record<string, { url: string }>) {
  const seen = new Map<string, string>();
  const events: Array<[number, string]> = [];
  let on = true;
  const note = (key: string, value: string) => {
    if (seen.get(key) === value) return;
    seen.set(key, value);
    events.push([Date.now(), `${key} ${value}`]);
  };
  const loop = (async () => {
    while (on) {
      const st = await haproxy.states().catch(() => ({}) as Record<string, string>);
      for (const [k, v] of Object.entries(st)) note(`haproxy ${k}`, v);
      for (const [name, k] of Object.entries(keepers))
        note(`${name} /primary`, String((await keeperGet(k.url, '/primary'))?.code ?? 'no answer'));
      await sleep(20);
    }
  })();
  return {
    /** When HAProxy first showed `server` in `state` at or after `from`. */
    firstSeen(server: string, state: string, from: number): number | null {
      const hit = events.find(([t, e]) => t >= from && e === `haproxy ${server} ${state}`);
      return hit ? hit[0] : null;
    },
    async stop(from: number) {
      on = false;
      await loop;
      return events.filter(([t]) => t >= from - 200).map(([t, e]) => `${t - from} ms: ${e}`);
    },
  };
}

const TOKEN = 'trial-keeper-token';
export const TRIAL_TIMING = { intervalMs: 500, failures: 3, startupGraceMs: 3000 };
const FREEZE_MS = 4000;
const SETTLE_MS = 2500;
const SYNC = 'ANY 1 (a, b)';

interface Status {
  role?: string;
  writable?: boolean;
  streaming?: boolean;
  sync?: { current: string | null; observation: string };
  counters?: { promotions: number; serverStops: number };
}

const status = async (k: { url: string }) => (await keeperGet(k.url, '/status'))?.body as Status | null;

function withConninfo(conninfo: string, key: string, value: string): string {
  return conninfo.replace(new RegExp(`${key}=\\S+`), `${key}=${value}`);
}

export async function runKeeperTrial(fault: FaultName, opts: TrialOptions = {}): Promise<TrialResult> {
  const spec = FAULTS[fault];
  const notes: string[] = [];
  const sb = await Sandbox.create({ name: `trial-${fault}`, ...(opts.major ? { major: opts.major } : {}) });
  const keepers: Array<KeeperProcess & { cleanup(): void }> = [];
  let haproxy: HaproxyHandle | undefined;
  let watch: ReturnType<typeof startWriteWatch> | undefined;
  let trace: ReturnType<typeof tracer> | undefined;
  let a: SandboxNode | undefined;
  const logs: Record<string, string[]> = {};
  try {
    // The server default (the sandbox lowers it): promotion must not depend on it.
    const settings = { wal_retrieve_retry_interval: '5s' };
    a = await sb.startNode('a', { settings });
    await a.query(LEDGER_DDL);
    const b = await sb.createStandby('b', a, { settings });
    const [pa, pb, pw] = [await freePort(), await freePort(), await freePort()];
    const closed = await freePort();
    const t = TRIAL_TIMING;
    const common = {
      interval: `${t.intervalMs}ms`,
      failures: t.failures,
      startupGrace: `${t.startupGraceMs}ms`,
      syncStandbyNames: spec.sync ? SYNC : '',
      log: { level: 'info' },
      ...(spec.witness ? { witness: { url: `http://127.0.0.1:${pw}` } } : {}),
    };
    const keeperConfig = (self: SandboxNode, other: SandboxNode, port: number, otherPort: number) => ({
      ...common,
      node: { name: self.name, conninfo: self.conninfo(), pgdata: self.dataDir },
      peer: { name: other.name, conninfo: other.conninfo(), keeperUrl: `http://127.0.0.1:${otherPort}` },
      http: { listen: `127.0.0.1:${port}`, token: TOKEN },
    });
    const ca = keeperConfig(a, b, pa, pb);
    const cb = keeperConfig(b, a, pb, pa);
    const broken = fault.startsWith('wrong-') ? (fault.endsWith('standby') ? cb : ca) : undefined;
    if (broken)
      broken.peer.conninfo = fault.startsWith('wrong-password')
        ? withConninfo(broken.peer.conninfo, 'password', 'Wr0ngPassw0rd')
        : withConninfo(broken.peer.conninfo, 'port', String(closed));
    const start = (name: string, config: Record<string, unknown>) => {
      const k = startKeeperProcess(name, config, {
        ...(opts.dist ? { dist: true } : {}),
        ...(opts.echo ? { echo: true } : {}),
        ...(config === broken ? { args: ['--force'] } : {}),
      });
      keepers.push(k);
      logs[name] = k.log;
      return k;
    };
    if (spec.witness)
      start('w', {
        mode: 'witness',
        node: { name: 'w' },
        members: { a: a.conninfo(), b: b.conninfo() },
        interval: common.interval,
        log: common.log,
        http: { listen: `127.0.0.1:${pw}`, token: TOKEN },
      });
    let ka = start('ka', ca);
    const kb = start('kb', cb);
    const keepersStartedAt = Date.now();

    let seen: unknown[] = [];
    await until('a writable, b streaming', async () => {
      const [sa, sbs] = [await status(ka), await status(kb)];
      seen = [sa, sbs];
      const syncOk =
        !spec.sync || broken === cb || (sa?.sync?.current === SYNC && sbs?.sync?.observation === 'sync');
      return sa?.role === 'primary' && sa.writable && sbs?.role === 'standby' && sbs.streaming && syncOk;
    }).catch((err: Error) => {
      const tail = (k: KeeperProcess) => k.log.slice(-6).join('\n');
      throw new Error(
        `${err.message}; status a, b: ${JSON.stringify(seen)}\nka:\n${tail(ka)}\nkb:\n${tail(kb)}`,
      );
    });
    haproxy = await startHaproxy([
      { name: 'a', port: a.port, checkPort: pa },
      { name: 'b', port: b.port, checkPort: pb },
    ]);
    await haproxy.waitStates({ a: 'UP', b: 'DOWN' }, 'patroni');
    await haproxy.waitStates({ a: 'UP', b: 'DOWN' }, 'plain');

    const facts = a.facts();
    const target = (writer: string, port: number, connectTimeoutMs?: number): WriteTarget => ({
      ...facts,
      writer,
      port,
      ...(connectTimeoutMs ? { connectTimeoutMs } : {}),
    });
    // The clients behind HAProxy give up a connection attempt after 100 ms (connect + SCRAM
    // through HAProxy on loopback takes ~10 ms) and try again: while a dead server is still
    // marked up (fall 2 × inter 500 ms), HAProxy retries it with a turn-around delay of up to
    // 1 s per retry, and a client that waits that long measures HAProxy's retries, not the
    // failover. upMs shows when HAProxy itself saw the new primary.
    watch = startWriteWatch(
      [
        target('a', a.port),
        target('b', b.port),
        target('haproxy', haproxy.ports.patroni, 100),
        target('haproxy-plain', haproxy.ports.plain, 100),
      ],
      { nodeByPort: { [a.port]: 'a', [b.port]: 'b' } },
    );
    trace = tracer(haproxy, opts.trace ? { ka, kb } : {});
    await sleep(1000);
    const faultAt = Date.now();
    let endAt: number;
    switch (fault) {
      case 'postmaster-kill':
        await a.kill();
        break;
      case 'postmaster-stop':
      case 'postmaster-stop-async':
      case 'postmaster-stop-2node':
        a.pausePostmaster();
        break;
      case 'server-freeze':
        a.pause();
        break;
      case 'host-freeze':
        a.pause();
        ka.kill('SIGSTOP');
        break;
      case 'keeper-kill':
        ka.kill('SIGKILL');
        break;
      default:
        break; // the misconfiguration was there from the start
    }
    if (spec.failover) {
      const failedOverAt = await until(
        'a write through HAProxy on b',
        async () => firstAck(watch!.attempts, 'haproxy', 'b', faultAt),
        30_000,
      ).catch(() => null);
      if (fault === 'server-freeze' || fault === 'host-freeze') {
        await sleep(faultAt + FREEZE_MS - Date.now());
        // A frozen host comes back all at once.
        a.resume();
        if (fault === 'host-freeze') ka.kill('SIGCONT');
        notes.push(`thawed after ${Date.now() - faultAt} ms`);
      }
      endAt = Math.max(Date.now(), (failedOverAt ?? Date.now()) + SETTLE_MS) + SETTLE_MS;
    } else if (fault === 'keeper-kill') {
      await ka.exit;
      await sleep(faultAt + 1000 - Date.now());
      // systemd's Restart=always, RestartSec=1
      ka.cleanup();
      ka = start('ka-restarted', ca);
      const restartedAt = Date.now();
      await until('a write through HAProxy on a again', async () =>
        firstAck(watch!.attempts, 'haproxy', 'a', restartedAt),
      ).catch(() => null);
      endAt = Date.now() + SETTLE_MS;
    } else {
      // Long enough for a standby that misjudges a live primary as dead to promote: the
      // startup grace, the promotion deadline and then some.
      endAt = keepersStartedAt + t.startupGraceMs + 4 * t.intervalMs * t.failures + SETTLE_MS;
    }
    await sleep(endAt - Date.now());
    const watch0 = watch;
    const attempts = await watch.stop();
    watch = undefined;
    const upAt = trace.firstSeen('b', 'UP', faultAt);
    const traced = await trace.stop(faultAt);
    if (opts.trace) {
      notes.push(...traced);
      for (const c of watch0.connects)
        if (c.writer === 'haproxy' && c.startedAt >= faultAt)
          notes.push(
            `${c.startedAt - faultAt}..${c.doneAt - faultAt} ms: haproxy client connect ${c.ok ? 'ok' : `failed: ${c.error}`}`,
          );
    }

    const [sa, sbs] = [await status(ka), await status(kb)];
    const failedOver = (await b.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r'))[0]?.r === false;
    const survivor = failedOver ? b : a;
    const present = new Set(
      (await survivor.query<{ writer: string; n: number }>('SELECT writer, n FROM ledger')).map(
        (r) => `${r.writer}/${r.n}`,
      ),
    );
    const firstB = firstAck(attempts, 'haproxy', 'b', faultAt);
    const lost = lostAcknowledged(attempts, present);
    const lastOnA = Math.max(0, ...attempts.filter((x) => x.ok && x.node === 'a').map((x) => x.serverAt!));
    const lossWindowMs = lost.length === 0 ? 0 : lastOnA - Math.min(...lost.map((x) => x.serverAt!));
    return {
      fault,
      major: sb.major,
      failedOver,
      ttfwMs: spec.failover && firstB !== null ? firstB - faultAt : null,
      upMs: spec.failover && upAt !== null ? upAt - faultAt : null,
      gapMs: longestGap(attempts, 'haproxy', faultAt, endAt),
      twoWriters: twoWriterMoments(attempts),
      acked: attempts.filter((x) => x.ok).length,
      lostAcked: lost.length,
      lossWindowMs,
      misrouted: {
        patroni: misrouted(attempts, 'haproxy').length,
        plain: misrouted(attempts, 'haproxy-plain').length,
      },
      serverStops: sa?.counters?.serverStops ?? 0,
      promotions: sbs?.counters?.promotions ?? 0,
      notes,
      logs,
      attempts,
    };
  } finally {
    await watch?.stop();
    await trace?.stop(0);
    a?.resume();
    for (const k of keepers) k.kill('SIGCONT');
    await haproxy?.stop();
    for (const k of keepers) k.cleanup();
    await sb.destroy();
  }
}
