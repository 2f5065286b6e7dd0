import { toPgfleetError } from '@pgfleet/connection';
import type pg from 'pg';
import type { NodeConfig, ResolvedConfig } from '../config.js';
import { edgesFor } from '../naming.js';
import { haSession, primaryFacts, standbyFacts } from './node-facts.js';
import { assertWritable, findPrimary } from './primary.js';
import { type NodeHaStatus, planNodeHa } from './readiness.js';

/**
 * Read-only: a primary + standby node's status as `pgfleet-mm status` shows it (its primary,
 * failover readiness and why not, its standbys), without a running replicator and without
 * changing anything.
 */
export async function nodeHaStatus(
  node: NodeConfig,
  config: ResolvedConfig,
  opts: { timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<NodeHaStatus> {
  const timeoutMs = opts.timeoutMs ?? 3000;
  const o = { timeoutMs, ...(opts.signal ? { signal: opts.signal } : {}) };
  const out = edgesFor(config.nodes)
    .filter((e) => e.source === node.name)
    .map((e) => e.slot);
  let client: pg.Client | null = null;
  try {
    const primary = await findPrimary(node, o);
    client = await haSession(primary.conninfo, o, 'status');
    await assertWritable(client, node.name, primary);
    const pf = await primaryFacts(client, node, config.nodes, primary);
    const standbys = await Promise.all(
      node.servers.filter((s) => s.name !== primary.server).map((s) => standbyFacts(s, out, o)),
    );
    return planNodeHa(node.name, pf, null, standbys, new Date()).status;
  } catch (err) {
    return planNodeHa(node.name, null, toPgfleetError(err).message, [], new Date()).status;
  } finally {
    await client?.end().catch(() => {});
  }
}

/** One line per node for the `status` table. */
export function formatNodeHa(st: NodeHaStatus): string[] {
  const head = `${st.node.padEnd(11)} ${String(st.primary ?? '-').padEnd(12)} ${String(st.procedure ?? '-').padEnd(15)} ${st.ready ? 'yes' : 'no '}  ${st.reasons.join('; ')}`;
  const lines = [head];
  for (const s of st.standbys)
    lines.push(
      `${''.padEnd(11)}   standby ${s.server}: ${s.streaming ? 'streaming' : 'not streaming'}${s.lagBytes === null ? '' : `, ${s.lagBytes} B behind`}${s.ready ? ', ready' : `, not ready: ${s.reasons.join('; ')}`}`,
    );
  return lines;
}
