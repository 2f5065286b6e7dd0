import { connect, parseConninfo, toPgfleetError } from '@pgfleet/connection';
import type pg from 'pg';
import type { NodeConfig } from '../config.js';
import { edgesFor } from '../naming.js';
import type { PrimaryTarget } from './primary.js';
import type { PrimaryFacts, StandbyFacts } from './readiness.js';

export interface FactsOptions {
  timeoutMs: number;
  signal?: AbortSignal;
}

async function session(conninfo: string, o: FactsOptions, what: string): Promise<pg.Client> {
  const c = await connect(conninfo, {
    connectTimeoutMs: o.timeoutMs,
    totalTimeoutMs: o.timeoutMs,
    statementTimeoutMs: Math.max(o.timeoutMs, 5000),
    applicationName: `pgfleet-mm:ha:${what}`,
    ...(o.signal ? { signal: o.signal } : {}),
  });
  c.on('error', () => {});
  return c;
}

/** What the primary shows about its standbys' slots and the node's outgoing slots. */
export async function primaryFacts(
  client: pg.Client,
  node: NodeConfig,
  allNodes: ReadonlyArray<Pick<NodeConfig, 'name'>>,
  primary: PrimaryTarget,
): Promise<PrimaryFacts> {
  const standbySlots = node.servers.filter((s) => s.name !== primary.server).map((s) => s.slot);
  const out = edgesFor(allNodes).filter((e) => e.source === node.name);
  const { rows: v } = await client.query(
    `SELECT current_setting('server_version_num')::int / 10000 AS major,
            current_setting('synchronized_standby_slots', true) AS sss,
            to_regclass('pgfleet.slot_resync') IS NOT NULL AS markers`,
  );
  const major = Number(v[0].major);
  const { rows: phys } = await client.query(
    `SELECT slot_name AS slot, active, pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::int8 AS lag
       FROM pg_replication_slots WHERE slot_type = 'physical' AND slot_name = ANY($1::text[])`,
    [standbySlots],
  );
  const { rows: logical } = await client.query(
    `SELECT s.slot_name AS slot, ${major >= 17 ? 's.failover' : 'NULL::boolean'} AS failover
       FROM pg_replication_slots s WHERE s.slot_type = 'logical' AND s.slot_name = ANY($1::text[])`,
    [out.map((e) => e.slot)],
  );
  const { rows: pubs } = await client.query(
    'SELECT pubname FROM pg_publication WHERE pubname = ANY($1::text[])',
    [out.map((e) => e.publication)],
  );
  const states = new Map<string, string>();
  if (v[0].markers) {
    const { rows } = await client.query('SELECT slot, state FROM pgfleet.slot_resync');
    for (const r of rows) states.set(r.slot as string, r.state as string);
  }
  return {
    server: primary.server ?? node.name,
    major,
    standbySlots: phys.map((r) => ({
      slot: r.slot as string,
      active: r.active === true,
      lagBytes: r.lag === null ? null : Number(r.lag),
    })),
    outSlots: out.map((e) => {
      const l = logical.find((r) => r.slot === e.slot);
      return {
        slot: e.slot,
        exists: l !== undefined,
        failover: l ? ((l.failover as boolean | null) ?? null) : null,
        publication: pubs.some((p) => p.pubname === e.publication),
        state: states.get(e.slot) ?? null,
      };
    }),
    synchronizedStandbySlots: (v[0].sss as string | null) ?? null,
  };
}

function hasDbname(conninfo: string): boolean {
  try {
    const p = parseConninfo(conninfo);
    return p.dbname !== undefined && p.dbname !== '' && p.dbname !== 'replication';
  } catch {
    return false;
  }
}

/** What one of the node's other servers shows (never throws: an unreachable server is a fact). */
export async function standbyFacts(
  server: { name: string; slot: string; conninfo: string },
  out: string[],
  o: FactsOptions,
): Promise<StandbyFacts> {
  const facts: StandbyFacts = {
    server: server.name,
    slot: server.slot,
    error: null,
    inRecovery: null,
    settings: null,
    syncedSlots: [],
  };
  let c: pg.Client | null = null;
  try {
    c = await session(server.conninfo, o, 'standby');
    const { rows } = await c.query(
      `SELECT pg_is_in_recovery() AS rec, current_setting('server_version_num')::int / 10000 AS major,
              current_setting('sync_replication_slots', true) AS srs, current_setting('hot_standby_feedback') AS hsf,
              current_setting('primary_slot_name') AS psn, current_setting('primary_conninfo') AS pci`,
    );
    const r = rows[0];
    facts.inRecovery = r.rec === true;
    if (Number(r.major) >= 17) {
      // primary_conninfo holds a password: only whether it names a database leaves here.
      facts.settings = {
        syncReplicationSlots: r.srs === 'on',
        hotStandbyFeedback: r.hsf === 'on',
        primarySlotName: String(r.psn ?? ''),
        primaryConninfoHasDbname: hasDbname(String(r.pci ?? '')),
      };
      const { rows: slots } = await c.query(
        `SELECT slot_name AS slot, synced, temporary FROM pg_replication_slots
          WHERE slot_type = 'logical' AND slot_name = ANY($1::text[])`,
        [out],
      );
      facts.syncedSlots = slots.map((s) => ({
        slot: s.slot as string,
        synced: s.synced === true,
        temporary: s.temporary === true,
      }));
    }
  } catch (err) {
    facts.error = toPgfleetError(err).message;
  } finally {
    await c?.end().catch(() => {});
  }
  return facts;
}

export { session as haSession };
