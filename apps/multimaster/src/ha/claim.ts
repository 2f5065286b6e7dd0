import { hostname } from 'node:os';
import type pg from 'pg';
import type { Edge } from '../naming.js';
import { HaError } from './errors.js';

/**
 * First key of every pgfleet-mm advisory lock ('pgmm'); the second is hashtext() of what is
 * locked. Advisory locks with two int4 keys show in pg_locks as classid/objid, objsubid 2.
 */
export const LOCK_CLASS = 0x70676d6d;

/** Second key of the lock a replicator holds on an edge's target while it drives the edge. */
export function edgeLockName(edge: Pick<Edge, 'id'>): string {
  return `edge ${edge.id}`;
}

/** Second key of the lock held on a node's primary while its failover work runs. */
export function nodeLockName(node: string): string {
  return `node ${node}`;
}

/** How a replicator names itself in claims: host, process, and which edges it runs. */
export function replicatorIdentity(selection: string | null, pid = process.pid, host = hostname()): string {
  return `${host} pid ${pid} (${selection === null ? 'run' : `run --node ${selection}`})`;
}

/** Who holds an edge: what it recorded when it claimed it, or its session's application_name. */
export interface EdgeHolder {
  holder: string;
  /** Backend pid of the claiming session on the target. */
  pid: number;
  since: string | null;
}

const HOLDER_SQL = `
  SELECT l.pid, coalesce(c.holder, a.application_name, 'pid ' || l.pid) AS holder,
         coalesce(c.claimed_at, a.backend_start)::text AS since
    FROM pg_locks l
    LEFT JOIN pg_stat_activity a ON a.pid = l.pid
    LEFT JOIN pgfleet.edge_claims c ON c.edge = $2 AND c.backend_pid = l.pid
   WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
     AND l.classid = $1::int::oid AND l.objid = hashtext($3)::oid
   LIMIT 1`;

/** The holder of an edge's claim on its target, or null when nobody drives it. */
export async function edgeHolder(client: pg.Client, edge: Pick<Edge, 'id'>): Promise<EdgeHolder | null> {
  const { rows } = await client.query(await holderSql(client), [LOCK_CLASS, edge.id, edgeLockName(edge)]);
  const r = rows[0];
  return r ? { holder: String(r.holder), pid: Number(r.pid), since: r.since ?? null } : null;
}

/** Meshes set up before claims were recorded have no pgfleet.edge_claims: read pg_locks alone. */
async function holderSql(client: pg.Client): Promise<string> {
  const { rows } = await client.query(`SELECT to_regclass('pgfleet.edge_claims') IS NOT NULL AS present`);
  if (rows[0]?.present) return HOLDER_SQL;
  return HOLDER_SQL.replace(
    'LEFT JOIN pgfleet.edge_claims c ON c.edge = $2 AND c.backend_pid = l.pid',
    'LEFT JOIN (SELECT NULL::text AS holder, NULL::timestamptz AS claimed_at, $2::text AS edge) c ON false',
  );
}

/**
 * Claims `edge` for this session: a session advisory lock on the target, held until the
 * session ends (a crashed replicator's claim goes with its connection), and a row naming the
 * holder for `status`. Two replicators never drive one edge: the second one gets
 * EDGE_CLAIMED naming the first and retries later.
 */
export async function claimEdge(client: pg.Client, edge: Edge, holder: string): Promise<void> {
  const { rows } = await client.query('SELECT pg_try_advisory_lock($1, hashtext($2)) AS ok', [
    LOCK_CLASS,
    edgeLockName(edge),
  ]);
  if (!rows[0]?.ok) {
    const h = await edgeHolder(client, edge).catch(() => null);
    throw new HaError(
      'EDGE_CLAIMED',
      `edge ${edge.id} is driven by another replicator on ${edge.target}: ${h ? `${h.holder}, since ${h.since}` : 'holder unknown'}; ` +
        "stop one of them (run each node's replicator once, or with --node for its own edges only)",
      { edge: edge.id, target: edge.target, holder: h?.holder ?? null, holderPid: h?.pid ?? null },
    );
  }
  await client
    .query(
      `INSERT INTO pgfleet.edge_claims (edge, holder, backend_pid, claimed_at)
     VALUES ($1, $2, pg_backend_pid(), now())
     ON CONFLICT (edge) DO UPDATE SET holder = EXCLUDED.holder, backend_pid = EXCLUDED.backend_pid, claimed_at = EXCLUDED.claimed_at`,
      [edge.id, holder],
    )
    .catch((err: unknown) => {
      // pgfleet.edge_claims missing (mesh set up by an older init): the lock alone still
      // keeps the edge exclusive; `pgfleet-mm init` adds the table.
      if ((err as { code?: string }).code !== '42P01') throw err;
    });
}

/** Takes the lock on a node's primary that serializes its failover work; false when someone else holds it. */
export async function tryNodeLock(client: pg.Client, node: string): Promise<boolean> {
  const { rows } = await client.query('SELECT pg_try_advisory_lock($1, hashtext($2)) AS ok', [
    LOCK_CLASS,
    nodeLockName(node),
  ]);
  return rows[0]?.ok === true;
}

export async function releaseNodeLock(client: pg.Client, node: string): Promise<void> {
  await client.query('SELECT pg_advisory_unlock($1, hashtext($2))', [LOCK_CLASS, nodeLockName(node)]);
}

/** Releases an edge claim taken on this session (the resync hands the edge back). */
export async function releaseEdge(client: pg.Client, edge: Edge): Promise<void> {
  await client.query('SELECT pg_advisory_unlock($1, hashtext($2))', [LOCK_CLASS, edgeLockName(edge)]);
}
