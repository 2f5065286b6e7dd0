import {
  connect,
  formatConninfo,
  parseConninfo,
  resolveTargets,
  singleHostConninfo,
  toPgfleetError,
} from '@pgfleet/connection';
import type { NodeConfig } from '../config.js';
import { HaError } from './errors.js';

/** Where a node's writes go right now. */
export interface PrimaryTarget {
  /** One-host conninfo of the primary: every session of one edge session uses it. */
  conninfo: string;
  /** The server's name (from `servers`), its `host:port` for a multi-host conninfo, null for a single server. */
  server: string | null;
}

/** A server the primary may be on: a configured server, or one host of a multi-host conninfo. */
export interface Candidate {
  name: string;
  conninfo: string;
  keeperUrl: string | null;
}

export interface FindPrimaryOptions {
  /** Hard limit per keeper request and per server probe. */
  timeoutMs: number;
  signal?: AbortSignal;
  /** Injected for tests. */
  fetch?: typeof fetch;
}

/** The servers a node's primary may be on; a single one means there is nothing to look for. */
export function candidatesOf(node: NodeConfig): Candidate[] {
  if (node.servers.length > 0)
    return node.servers.map((s) => ({ name: s.name, conninfo: s.conninfo, keeperUrl: s.keeperUrl }));
  const params = parseConninfo(node.conninfo);
  const targets = resolveTargets(params);
  if (targets.length < 2) return [{ name: node.name, conninfo: node.conninfo, keeperUrl: null }];
  return targets.map((t) => ({
    name: `${t.host}:${t.port}`,
    conninfo: formatConninfo(singleHostConninfo(params, t)),
    keeperUrl: null,
  }));
}

/** What one server answered: writable (a primary that is not fenced), read-only, or nothing. */
export type ProbeAnswer = { name: string; writable: boolean } | { name: string; error: string };

/**
 * Picks the primary from what the keepers and the servers said (pure). A keeper that
 * answers 200 on `/primary` names it (the keeper answers so only while it holds recent
 * evidence that its server is the only primary; whoever then uses the server still checks
 * that it takes writes, see assertWritable). Keepers that answer but none 200 mean a
 * failover is under way: no primary yet. Without keepers, exactly one writable server is the
 * primary; two writable servers are never guessed between (that is two writers: refuse).
 */
export function pickPrimary(
  node: string,
  keepers: Array<{ name: string; status: number | null }>,
  probes: ProbeAnswer[],
): { server: string } | { error: HaError } {
  const saidPrimary = keepers.filter((k) => k.status === 200).map((k) => k.name);
  const keepersAnswered = keepers.some((k) => k.status !== null);
  const writable = probes.filter((p) => 'writable' in p && p.writable).map((p) => p.name);
  if (saidPrimary.length === 1) return { server: saidPrimary[0] as string };
  if (saidPrimary.length > 1)
    return {
      error: new HaError(
        'NO_PRIMARY',
        `node ${node}: keepers of ${saidPrimary.join(' and ')} both report primary; waiting`,
        {
          node,
          servers: saidPrimary,
        },
      ),
    };
  if (keepersAnswered)
    return {
      error: new HaError('NO_PRIMARY', `node ${node}: no keeper reports a primary (failover under way?)`, {
        node,
      }),
    };
  if (writable.length === 1) return { server: writable[0] as string };
  if (writable.length > 1)
    return {
      error: new HaError(
        'NO_PRIMARY',
        `node ${node}: servers ${writable.join(' and ')} both accept writes; refusing to pick one (fence the old primary)`,
        { node, servers: writable },
      ),
    };
  const why = probes.map((p) => `${p.name}: ${'error' in p ? p.error : 'read-only'}`).join('; ');
  return { error: new HaError('NO_PRIMARY', `node ${node}: no server accepts writes (${why})`, { node }) };
}

/** SQL whose one row says whether this server takes writes (not a standby, not fenced). */
export const WRITABLE_SQL = `SELECT pg_is_in_recovery() AS standby, current_setting('transaction_read_only') = 'on' AS ro`;

/**
 * Checks, on a session opened to the server findPrimary chose, that it takes writes: a
 * keeper's answer may be a moment old, and a fenced primary (default_transaction_read_only)
 * is not a primary for us.
 */
export async function assertWritable(
  client: { query(sql: string): Promise<{ rows: Array<Record<string, unknown>> }> },
  node: string,
  target: PrimaryTarget,
): Promise<void> {
  if (target.server === null) return;
  const { rows } = await client.query(WRITABLE_SQL);
  if (rows[0]?.standby || rows[0]?.ro)
    throw new HaError(
      'NO_PRIMARY',
      `node ${node}: server ${target.server} does not take writes (${rows[0]?.standby ? 'a standby' : 'read-only'}); waiting for its primary`,
      { node, server: target.server },
    );
}

async function keeperSays(url: string, o: FindPrimaryOptions): Promise<number | null> {
  try {
    const res = await (o.fetch ?? fetch)(`${url.replace(/\/$/, '')}/primary`, {
      signal: o.signal
        ? AbortSignal.any([o.signal, AbortSignal.timeout(o.timeoutMs)])
        : AbortSignal.timeout(o.timeoutMs),
    });
    await res.arrayBuffer().catch(() => {});
    return res.status;
  } catch {
    return null;
  }
}

async function probeWritable(c: Candidate, o: FindPrimaryOptions): Promise<ProbeAnswer> {
  try {
    const client = await connect(c.conninfo, {
      connectTimeoutMs: o.timeoutMs,
      totalTimeoutMs: o.timeoutMs,
      applicationName: 'pgfleet-mm:find-primary',
      ...(o.signal ? { signal: o.signal } : {}),
    });
    try {
      // A fenced primary runs with default_transaction_read_only = on: not a primary for us.
      const { rows } = await client.query(WRITABLE_SQL);
      return { name: c.name, writable: !rows[0].standby && !rows[0].ro };
    } finally {
      await client.end().catch(() => {});
    }
  } catch (err) {
    return { name: c.name, error: toPgfleetError(err).message };
  }
}

/**
 * Finds the server of `node` that takes writes now: the one whose keeper answers 200 on
 * `/primary` (an HTTP round trip, no connection: what a failover waits on), else, when no
 * keeper is configured or none answers, the one writable server (a connection to each).
 * Sessions opened to the result check it with assertWritable. A node of one server is
 * returned as it is, without a probe.
 */
export async function findPrimary(node: NodeConfig, o: FindPrimaryOptions): Promise<PrimaryTarget> {
  const cands = candidatesOf(node);
  if (cands.length === 1 && node.servers.length === 0) return { conninfo: node.conninfo, server: null };
  const withKeeper = cands.filter((c) => c.keeperUrl);
  const keepers = await Promise.all(
    withKeeper.map(async (c) => ({ name: c.name, status: await keeperSays(c.keeperUrl as string, o) })),
  );
  const probes = keepers.some((k) => k.status !== null)
    ? []
    : await Promise.all(cands.map((c) => probeWritable(c, o)));
  const pick = pickPrimary(node.name, keepers, probes);
  if ('error' in pick) throw pick.error;
  const c = cands.find((x) => x.name === pick.server) as Candidate;
  return { conninfo: c.conninfo, server: c.name };
}
