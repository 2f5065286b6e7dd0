import { resolveTargets, targetLabel } from './client-config.js';
import { connect } from './connect.js';
import { type ConnParams, parseConninfo } from './conninfo.js';
import { NodeUnreachableError, type PgfleetError } from './errors.js';
import { closeClient, raceHard } from './hard-timeout.js';
import { toPgfleetError } from './map-error.js';

export type ProbeResult =
  | { ok: true; latencyMs: number }
  | { ok: false; latencyMs: number; error: PgfleetError };

export interface ProbeOptions {
  /** Hard limit for connect + `SELECT 1` together, enforced even when the peer never answers. */
  timeoutMs: number;
  signal?: AbortSignal;
  /** Monotonic milliseconds (injectable for tests). */
  now?: () => number;
}

function nodeLabel(conninfo: string | ConnParams): string | undefined {
  try {
    const params = typeof conninfo === 'string' ? parseConninfo(conninfo) : conninfo;
    return resolveTargets(params).map(targetLabel).join(',');
  } catch {
    return undefined;
  }
}

/**
 * Liveness check: a fresh connection and `SELECT 1`, all within `timeoutMs`, no retry.
 * Never throws; a failure comes back as `{ ok: false, error }` with a typed error.
 * A black-holed server (SIGSTOPped, partitioned) costs `timeoutMs`, not a TCP timeout.
 */
export async function probe(conninfo: string | ConnParams, opts: ProbeOptions): Promise<ProbeResult> {
  const now = opts.now ?? (() => performance.now());
  const started = now();
  const node = nodeLabel(conninfo);
  try {
    const client = await connect(conninfo, {
      connectTimeoutMs: opts.timeoutMs,
      totalTimeoutMs: opts.timeoutMs,
      signal: opts.signal,
    });
    try {
      const left = Math.max(1, opts.timeoutMs - (now() - started));
      await raceHard(client.query('SELECT 1'), client, {
        timeoutMs: left,
        signal: opts.signal,
        onTimeout: () =>
          new NodeUnreachableError(`probe of ${node} got no answer to SELECT 1 within ${opts.timeoutMs} ms`, {
            node,
            action: 'probe',
            reason: 'timeout',
            timeoutMs: opts.timeoutMs,
          }),
      });
    } finally {
      void closeClient(client, 500);
    }
    return { ok: true, latencyMs: now() - started };
  } catch (err) {
    return { ok: false, latencyMs: now() - started, error: toPgfleetError(err, { node, action: 'probe' }) };
  }
}
