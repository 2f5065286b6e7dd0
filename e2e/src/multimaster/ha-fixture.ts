import { connect } from '@pgfleet/connection';
import { type KeeperHandle, parseConfig, startKeeper } from '@pgfleet/keeper';
import type { ResolvedConfig } from '@pgfleet/multimaster';
import { freePort, type Sandbox, type SandboxNode } from '@pgfleet/sandbox';
import type pg from 'pg';
import type { Logger } from 'pino';
import { eventually } from '../support/eventually.js';

/**
 * Pieces of the scenarios where a mesh node is a keeper-protected primary + standby
 * (issue 11), shared with the bench and the demo: the pair with its keepers and a witness,
 * the settings a standby needs for failover slots, and ledger writers that follow a node's
 * primary and remember every id whose commit was acknowledged.
 */

export const KEEPER_TOKEN = 'e2e-mesh-ha-token';

/**
 * What a standby of a mesh node needs on PostgreSQL 17+ to keep its primary's failover
 * slots: slot synchronization, feedback so the primary keeps the catalog rows those slots
 * need, and a dbname in primary_conninfo (the sandbox puts one there) and primary_slot_name
 * (the sandbox names the slot after the standby).
 */
export function haStandbySettings(major: number): Record<string, string> {
  return major >= 17
    ? { sync_replication_slots: 'on', hot_standby_feedback: 'on' }
    : { hot_standby_feedback: 'on' };
}

export interface HaPair {
  primary: SandboxNode;
  standby: SandboxNode;
  keepers: KeeperHandle[];
  /** Keeper HTTP API of each server, by server name. */
  keeperUrls: Record<string, string>;
  stopKeepers(): Promise<void>;
}

export interface HaPairOptions {
  logger: Logger;
  /** Keeper loop period (ms) and misses before promotion. */
  intervalMs?: number;
  failures?: number;
  /** Synchronous replication between the two (ANY 1 of both names). */
  sync?: boolean;
}

/**
 * Keepers for a running primary + standby: one beside each server and a witness, with the
 * fast path (the primary's keeper tells the standby's at once when its postmaster dies).
 */
export async function startKeepers(
  primary: SandboxNode,
  standby: SandboxNode,
  o: HaPairOptions,
): Promise<Pick<HaPair, 'keepers' | 'keeperUrls' | 'stopKeepers'>> {
  const [pw, pp, ps] = [await freePort(), await freePort(), await freePort()];
  const common = {
    // A SIGKILLed postmaster takes the fast path (promotion without waiting for the
    // interval); the window only decides how soon a standby that falls behind on a loaded
    // machine gets synchronous replication degraded (and then may not be promoted).
    interval: `${o.intervalMs ?? 500}ms`,
    failures: o.failures ?? 5,
    connectTimeout: `${Math.floor((o.intervalMs ?? 500) * 0.8)}ms`,
    syncStandbyNames: o.sync === false ? '' : `ANY 1 (${primary.name}, ${standby.name})`,
    startupGrace: '10s',
    maxLagOnFailover: '16MB',
    log: { level: 'info' },
  };
  const keepers: KeeperHandle[] = [];
  const stopKeepers = async () => {
    await Promise.all(keepers.map((k) => k.stop()));
    keepers.length = 0;
  };
  try {
    keepers.push(
      await startKeeper(
        parseConfig({
          ...common,
          mode: 'witness',
          node: { name: `${primary.name}_witness` },
          members: {
            [primary.name]: primary.conninfo({ from: 'witness' }),
            [standby.name]: standby.conninfo({ from: 'witness' }),
          },
          http: { listen: `127.0.0.1:${pw}`, token: KEEPER_TOKEN },
        }),
        { logger: o.logger },
      ),
    );
    const one = async (self: SandboxNode, other: SandboxNode, port: number, otherPort: number) =>
      startKeeper(
        parseConfig({
          ...common,
          node: { name: self.name, conninfo: self.conninfo() },
          peer: {
            name: other.name,
            conninfo: other.conninfo({ from: `keeper-${self.name}` }),
            keeperUrl: `http://127.0.0.1:${otherPort}`,
          },
          witness: { url: `http://127.0.0.1:${pw}` },
          http: { listen: `127.0.0.1:${port}`, token: KEEPER_TOKEN },
        }),
        { logger: o.logger },
      );
    keepers.push(await one(primary, standby, pp, ps), await one(standby, primary, ps, pp));
  } catch (err) {
    await stopKeepers();
    throw err;
  }
  return {
    keepers,
    keeperUrls: { [primary.name]: `http://127.0.0.1:${pp}`, [standby.name]: `http://127.0.0.1:${ps}` },
    stopKeepers,
  };
}

/**
 * Waits until the pair's keepers see synchronous replication working (the primary's keeper
 * has not degraded it, the standby's saw itself synchronous): only then does the standby's
 * keeper promote it (a standby that may have missed commits never is). On a loaded machine a
 * standby that falls behind for `failures × interval` gets sync degraded, and restored once
 * it caught up.
 */
export async function untilSyncHealthy(
  pair: Pick<HaPair, 'keepers' | 'primary' | 'standby'>,
  timeoutMs = 60_000,
) {
  await eventually(
    `${pair.primary.name}/${pair.standby.name} synchronous and not degraded`,
    async () => pair.keepers.map((k) => k.status()),
    (st) =>
      st.some(
        (s) =>
          s.node === pair.primary.name && s.role === 'primary' && !s.sync.degraded && s.sync.current !== '',
      ) &&
      st.some(
        (s) =>
          s.node === pair.standby.name &&
          s.role === 'standby' &&
          s.streaming &&
          s.sync.observation === 'sync',
      ),
    { timeoutMs, intervalMs: 50 },
  );
}

/** A logical primary `names[0]` with its streaming standby `names[1]` and their keepers. */
export async function startHaPair(sb: Sandbox, names: [string, string], o: HaPairOptions): Promise<HaPair> {
  const primary = await sb.startNode(names[0], { logical: true, settings: { autovacuum: false } });
  const standby = await sb.createStandby(names[1], primary, { settings: haStandbySettings(sb.major) });
  const k = await startKeepers(primary, standby, o);
  return { primary, standby, ...k };
}

/** The mesh's node entry for a pair: its servers (each slot named after its server) and keepers. */
export function haNode(name: string, servers: SandboxNode[], keeperUrls: Record<string, string> = {}) {
  return {
    name,
    servers: servers.map((s) => ({
      name: s.name,
      conninfo: s.conninfo(),
      ...(keeperUrls[s.name] ? { keeperUrl: keeperUrls[s.name] } : {}),
    })),
  };
}

/** The node's conninfo as the mesh resolved it (multi-host with target_session_attrs=read-write for a pair). */
export function nodeConninfo(config: ResolvedConfig, node: string): string {
  const n = config.nodes.find((x) => x.name === node);
  if (!n) throw new Error(`no node ${node}`);
  return n.conninfo;
}

/**
 * Inserts single rows into k.ledger on one mesh node (through its conninfo, so it follows a
 * pair's primary), every `pauseMs`, and updates one of its own rows every 5th write. Keeps
 * the ids whose COMMIT was acknowledged, and those in doubt (the connection failed during
 * the commit: committed or not, nobody told the client).
 */
export function ledgerWriter(node: string, conninfo: string, base: number, pauseMs = 5) {
  const acked: number[] = [];
  const inDoubt: number[] = [];
  let stop = false;
  let reconnects = 0;
  const done = (async () => {
    let c: pg.Client | null = null;
    let id = base;
    while (!stop) {
      if (!c) {
        try {
          c = await connect(conninfo, { connectTimeoutMs: 1000, applicationName: `ledger-${node}` });
          c.on('error', () => {});
        } catch {
          reconnects++;
          await new Promise((r) => setTimeout(r, 50));
          continue;
        }
      }
      id++;
      try {
        await c.query('INSERT INTO k.ledger (id, node, n) VALUES ($1, $2, 0)', [id, node]);
        acked.push(id);
        if (id % 5 === 0) await c.query('UPDATE k.ledger SET n = n + 1 WHERE id = $1', [id - 3]);
      } catch {
        if (acked.at(-1) !== id) inDoubt.push(id);
        await c.end().catch(() => {});
        c = null;
      }
      if (pauseMs > 0) await new Promise((r) => setTimeout(r, pauseMs));
    }
    await c?.end().catch(() => {});
  })();
  return {
    node,
    acked,
    inDoubt,
    get reconnects() {
      return reconnects;
    },
    async stop() {
      stop = true;
      await done;
    },
  };
}

export type LedgerWriter = ReturnType<typeof ledgerWriter>;

export const LEDGER_DDL =
  'CREATE SCHEMA k; CREATE TABLE k.ledger (id bigint PRIMARY KEY, node text NOT NULL, n int NOT NULL)';

/**
 * What each writer's ledger says about one node's rows: acknowledged ids missing (lost),
 * ids present that no writer tried (invented), and the ids in doubt that made it.
 */
export async function ledgerAudit(
  q: (sql: string) => Promise<Array<{ id: string | number }>>,
  writers: LedgerWriter[],
  /** Ids written by other means (probes). */
  others: number[] = [],
) {
  const have = new Set((await q('SELECT id FROM k.ledger')).map((r) => Number(r.id)));
  const tried = new Set([...writers.flatMap((w) => [...w.acked, ...w.inDoubt]), ...others]);
  const lost = writers.flatMap((w) => w.acked.filter((id) => !have.has(id)));
  const invented = [...have].filter((id) => !tried.has(id));
  return { rows: have.size, lost, invented };
}

/** Waits until `node`'s server accepts a write through `conninfo` (after a promotion). */
export async function untilWritable(conninfo: string, timeoutMs = 30_000): Promise<void> {
  await eventually(
    'a writable primary',
    async () => {
      const c = await connect(conninfo, { connectTimeoutMs: 500 });
      try {
        const { rows } = await c.query(
          `SELECT pg_is_in_recovery() AS r, current_setting('transaction_read_only') AS ro`,
        );
        return rows[0].r === false && rows[0].ro === 'off';
      } finally {
        await c.end().catch(() => {});
      }
    },
    (ok) => ok,
    { timeoutMs, intervalMs: 20 },
  );
}
