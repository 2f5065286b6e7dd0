import { connect, pause, quoteIdent, SqlState, sqlStateOf, toPgfleetError } from '@pgfleet/connection';
import { dropSlot } from '@pgfleet/wal';
import type pg from 'pg';
import type { Logger } from 'pino';
import { forgetOrigin } from '../apply/progress-mark.js';
import type { ResolvedConfig } from '../config.js';
import { MembershipError } from './errors.js';
import { removalPlan } from './plan.js';

export interface RemoveNodeOptions {
  logger?: Logger;
  connectTimeoutMs?: number;
}

export interface NodeRemovalResult {
  node: string;
  /** False when the node could not be reached (or, for the removed node, is not in the config). */
  reachable: boolean;
  /** Why the node was not cleaned (never holds a password). */
  error?: string;
  dropped: { slots: string[]; publications: string[]; origins: string[] };
}

export interface RemoveNodeReport {
  node: string;
  nodes: NodeRemovalResult[];
  /** Every surviving node was cleaned; the removed node may still hold its own objects. */
  complete: boolean;
  /** Nodes that still hold objects of the removed node (run remove-node again when they are back). */
  unreachable: string[];
}

/**
 * Drops an origin, terminating an apply session that has it set up (the edge into this
 * node from the removed one, if a replicator still drives it).
 */
export async function dropOriginForce(client: pg.Client, name: string, timeoutMs = 10_000): Promise<boolean> {
  const dropped = await dropOrigin(client, name, timeoutMs);
  // A later origin of the same name starts without the old one's gate and witness.
  await forgetOrigin(client, name);
  return dropped;
}

async function dropOrigin(client: pg.Client, name: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { rows } = await client.query('SELECT pg_replication_origin_oid($1) IS NOT NULL AS present', [
      name,
    ]);
    if (!rows[0].present) return false;
    try {
      await client.query('SELECT pg_replication_origin_drop($1)', [name]);
      return true;
    } catch (err) {
      const state = sqlStateOf(err);
      if (state === SqlState.UNDEFINED_OBJECT) return false;
      if (state !== SqlState.OBJECT_IN_USE || Date.now() > deadline) throw err;
      // "could not drop replication origin with ID n, in use by PID p" (origin.c).
      const pid = /PID (\d+)/.exec((err as Error).message ?? '')?.[1];
      if (pid) await client.query('SELECT pg_terminate_backend($1)', [Number(pid)]);
      await pause(50);
    }
  }
}

/**
 * Removes `name` from the mesh: on every reachable node drops the slots, publications and
 * origins of each edge touching it (terminating streams and apply sessions still using
 * them) and its registry row; on the removed node itself (when it is in the config and
 * reachable) drops its outgoing edges and incoming origins. Unreachable nodes are listed,
 * not fatal: run it again once they are back. Stop the replicator or restart it with the
 * node gone from the config, or its edges touching the node pause with "slot does not exist".
 */
export async function removeNode(
  config: ResolvedConfig,
  name: string,
  opts: RemoveNodeOptions = {},
): Promise<RemoveNodeReport> {
  const log = opts.logger?.child({ component: 'remove-node', node: name });
  const names = config.nodes.map((n) => n.name);
  if (!names.includes(name) && names.length === 0) {
    throw new MembershipError('MEMBERSHIP_INVALID', 'the config lists no nodes', { node: name });
  }
  const plan = removalPlan(names.includes(name) ? names : [...names, name], name);
  const results: NodeRemovalResult[] = [];
  for (const step of plan) {
    const node = config.nodes.find((n) => n.name === step.node);
    const res: NodeRemovalResult = {
      node: step.node,
      reachable: false,
      dropped: { slots: [], publications: [], origins: [] },
    };
    results.push(res);
    if (!node) {
      res.error = 'not in the config: not contacted (its own slots, publications and origins remain)';
      continue;
    }
    let client: pg.Client;
    try {
      client = await connect(node.conninfo, {
        connectTimeoutMs: opts.connectTimeoutMs ?? 5000,
        applicationName: 'pgfleet-mm:remove-node',
      });
    } catch (err) {
      res.error = toPgfleetError(err, { node: step.node }).message;
      log?.warn(
        { target: step.node, err: res.error },
        'node unreachable; its objects stay until remove-node runs again',
      );
      continue;
    }
    res.reachable = true;
    try {
      for (const s of step.slots) {
        if (await dropSlot(client, s, { ifExists: true, force: true })) res.dropped.slots.push(s);
      }
      for (const p of step.publications) {
        const { rows } = await client.query('SELECT 1 FROM pg_publication WHERE pubname = $1', [p]);
        if (rows.length) {
          await client.query(`DROP PUBLICATION ${quoteIdent(p)}`);
          res.dropped.publications.push(p);
        }
      }
      for (const o of step.origins) if (await dropOriginForce(client, o)) res.dropped.origins.push(o);
      const { rows: reg } = await client.query(
        `SELECT to_regclass('pgfleet.nodes') IS NOT NULL AS nodes, to_regclass('pgfleet.membership') IS NOT NULL AS membership`,
      );
      if (step.node === name) {
        if (reg[0].nodes) await client.query('DELETE FROM pgfleet.nodes WHERE name <> $1', [name]);
        if (reg[0].membership) await client.query('DELETE FROM pgfleet.membership');
      } else if (reg[0].nodes) {
        await client.query('DELETE FROM pgfleet.nodes WHERE name = $1', [name]);
      }
      log?.info({ target: step.node, dropped: res.dropped }, 'node cleaned');
    } catch (err) {
      res.error = toPgfleetError(err, { node: step.node }).message;
      log?.error({ target: step.node, err: res.error }, 'cleaning node failed');
    } finally {
      await client.end().catch(() => {});
    }
  }
  const unreachable = results.filter((r) => r.error !== undefined && r.node !== name).map((r) => r.node);
  return { node: name, nodes: results, complete: unreachable.length === 0, unreachable };
}
