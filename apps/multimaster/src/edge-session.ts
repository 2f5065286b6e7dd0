import { connect } from '@pgfleet/connection';
import { type Lsn, parseLsn } from '@pgfleet/wal';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { OriginView } from './apply/applier.js';
import { ApplyPausedError } from './apply/errors.js';
import { setUpOrigin } from './apply/progress-mark.js';
import type { OriginInfo } from './apply/seen.js';
import type { ResolvedConfig } from './config.js';
import { assertWritable, type PrimaryTarget } from './ha/primary.js';
import { slotResyncState } from './ha/slot-state.js';
import type { Edge } from './naming.js';
import { nodeOfOrigin } from './naming.js';
import { sqlMicros } from './pg-time.js';
import { APPLY_SESSION_SETTINGS, applySessionSql, VALUE_TEXT_SETTINGS } from './session-settings.js';

/*
 * The steps that set up one streaming session of an edge, one function each: check the
 * source, open the control and apply connections on the target, read what the apply needs
 * to know there. The edge runs them in order, against the servers that are its nodes'
 * primaries now (ha/edge-ha.ts).
 */

const CONNECT_TIMEOUT_MS = 5000;

/** What the edge needs to know on its source's primary before streaming from it. */
export interface SourceFacts {
  /** server_version_num. */
  version: number;
  slotExists: boolean;
  /** The slot's re-creation state after a failover (ha/slot-state.ts), null when none. */
  resyncState: string | null;
}

/**
 * A session on the source's current primary (`conninfo`, see ha/primary.ts), checked to
 * take writes, and what it says about the edge's slot. The caller keeps the session (the
 * standby gate of PostgreSQL 15/16 reads through it) or ends it.
 */
export async function openSource(
  target: PrimaryTarget,
  edge: Edge,
  appName: string,
  signal: AbortSignal,
): Promise<{ client: pg.Client; facts: SourceFacts }> {
  const c = await connect(target.conninfo, {
    connectTimeoutMs: CONNECT_TIMEOUT_MS,
    applicationName: appName,
    signal,
  });
  c.on('error', () => {});
  try {
    await assertWritable(c, edge.source, target);
    const { rows } = await c.query(
      `SELECT current_setting('server_version_num')::int AS v, EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1) AS slot`,
      [edge.slot],
    );
    const facts = {
      version: rows[0].v as number,
      slotExists: rows[0].slot as boolean,
      resyncState: await slotResyncState(c, edge.slot),
    };
    return { client: c, facts };
  } catch (err) {
    await c.end().catch(() => {});
    throw err;
  }
}

/**
 * The control connection on the target: catalog lookups, skip requests, records kept
 * outside the apply transaction. Same search_path as the apply session: format_type()
 * names the column types the apply casts to, qualified where that session needs it.
 */
export function openControl(conninfo: string, appName: string, signal: AbortSignal): Promise<pg.Client> {
  return connect(conninfo, {
    connectTimeoutMs: CONNECT_TIMEOUT_MS,
    applicationName: `${appName}:control`,
    settings: VALUE_TEXT_SETTINGS,
    signal,
  });
}

/**
 * The apply connection: replica role (no triggers, no foreign key checks, as the source
 * already ran them), the edge's replication origin, and its progress: where the stream
 * resumes. Planner settings: applySessionSql.
 */
export async function openApplySession(
  conninfo: string,
  edge: Edge,
  config: ResolvedConfig,
  appName: string,
  signal: AbortSignal,
  opts: { logger?: Logger } = {},
): Promise<{ db: pg.Client; startProgress: Lsn }> {
  const db = await connect(conninfo, {
    connectTimeoutMs: CONNECT_TIMEOUT_MS,
    applicationName: appName,
    settings: APPLY_SESSION_SETTINGS,
    signal,
  });
  db.on('error', () => {});
  try {
    await db.query(applySessionSql(config.apply.synchronousCommit));
    // The origin, moved back first if its witness says so (apply/progress-mark.ts).
    await setUpOrigin(db, edge.origin, opts.logger ? { logger: opts.logger } : {});
    const { rows } = await db.query(
      `SELECT coalesce(pg_replication_origin_session_progress(false), '0/0')::text AS lsn`,
    );
    // pg >= 8.23: queries are written back to back without waiting (set after the session
    // setup so those ran one by one).
    (db as unknown as { pipeline: boolean }).pipeline = true;
    return { db, startProgress: parseLsn(rows[0].lsn) };
  } catch (err) {
    await db.end().catch(() => {});
    throw err;
  }
}

/** What the apply needs to know on the target, read on the control connection. */
export interface TargetFacts {
  /** The target's replication origins by id, with the mesh node behind each. */
  origins: Map<number, OriginInfo>;
  /** µs since 2000: the target's floor, its own registration in pgfleet.nodes (for a node joined by add-node, the copy source's). */
  floor: bigint;
  /** The source's view as the last applied transaction recorded it (pgfleet.edge_seen), µs by node. */
  persistedSeen: Map<string, bigint>;
}

export async function readTargetFacts(control: pg.Client, edge: Edge): Promise<TargetFacts> {
  const { rows: check } = await control.query(
    `SELECT to_regclass('pgfleet.edge_seen') IS NOT NULL AS seen, to_regprocedure('pgfleet.record_conflicts(jsonb)') IS NOT NULL AS fn,
            to_regclass('pgfleet.apply_origins') IS NOT NULL AS progress`,
  );
  if (!check[0].seen || !check[0].fn || !check[0].progress)
    throw new ApplyPausedError(
      `the pgfleet schema on ${edge.target} is older than this replicator: run pgfleet-mm init again (it only adds what is missing)`,
      { edge: edge.id, node: edge.target },
    );
  const origins = await readOrigins(control);
  if (![...origins.values()].some((o) => o.name === edge.origin))
    throw new ApplyPausedError(
      `replication origin ${edge.origin} does not exist on ${edge.target}: run pgfleet-mm init`,
      {
        edge: edge.id,
      },
    );
  const { rows: f } = await control.query(
    `SELECT ${sqlMicros('coalesce(min(registered_at) FILTER (WHERE is_local), min(registered_at))')}::text AS us FROM pgfleet.nodes`,
  );
  await control.query(
    `INSERT INTO pgfleet.edge_seen (edge, seen) VALUES ($1, '{}') ON CONFLICT (edge) DO NOTHING`,
    [edge.id],
  );
  const { rows: s } = await control.query(
    `SELECT key AS node, ${sqlMicros('value::timestamptz')}::text AS us FROM pgfleet.edge_seen, jsonb_each_text(seen) WHERE edge = $1`,
    [edge.id],
  );
  return {
    origins,
    // No registration (a schema from before pgfleet.nodes): nothing counts as pre-mesh.
    floor: f[0]?.us ? BigInt(f[0].us) : -(2n ** 62n),
    persistedSeen: new Map(s.map((r) => [r.node as string, BigInt(r.us)])),
  };
}

/** Every replication origin of the target, by id, with the node its changes come from. */
export async function readOrigins(control: pg.Client): Promise<Map<number, OriginInfo>> {
  const { rows } = await control.query(
    'SELECT roident::int AS id, roname AS name FROM pg_replication_origin',
  );
  return new Map(
    rows.map((r) => [r.id as number, { name: r.name as string, node: nodeOfOrigin(r.name as string) }]),
  );
}

/** The apply's view of the origins: ranks and names by id, 0 being the target's own writes. */
export function originView(
  origins: ReadonlyMap<number, OriginInfo>,
  config: ResolvedConfig,
  edge: Edge,
  floor: bigint,
  epoch: number,
): OriginView {
  const ranks = new Map(config.nodes.map((n) => [n.name, n.rank]));
  const byId = new Map(origins);
  byId.set(0, { name: `local:${edge.target}`, node: edge.target });
  let width = 1;
  for (const id of byId.keys()) width = Math.max(width, id + 1);
  const rank: Array<number | null> = new Array(width).fill(null);
  const name: Array<string | null> = new Array(width).fill(null);
  for (const [id, o] of byId) {
    rank[id] = o.node === null ? null : (ranks.get(o.node) ?? null);
    name[id] = o.name;
  }
  return {
    epoch,
    byId,
    session: { floor, rank, originName: name },
    rankOf: (id) => rank[id] ?? Number.MAX_SAFE_INTEGER,
    nameOf: (id) => name[id] ?? `origin#${id}`,
  };
}
