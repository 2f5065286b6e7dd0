import { NodeUnreachableError, PgfleetError } from '@pgfleet/connection';

/**
 * The keeper's HTTP calls to other keepers: the fast-path notice to the peer keeper, and
 * heartbeats and vote requests to the witness. All carry the shared bearer token and a hard
 * timeout; failures are typed errors, never hangs.
 */

export type PeerEvent = 'primary-down' | 'degraded' | 'restored' | 'switchover';

export interface PeerNotice {
  event: PeerEvent;
  node: string;
  timeline?: number | null;
  reason?: string;
}

export interface HeartbeatBody {
  node: string;
  role: 'primary' | 'standby' | 'down';
  timeline: number | null;
  standbyPromotable: boolean;
  fenced: boolean;
  /** The sender holds its write lease: the witness grants no vote against it until it lapses. */
  writable: boolean;
  /** How long that lease lasts from this heartbeat. */
  leaseMs: number;
}

export interface HeartbeatReply {
  grantedTo: string | null;
}

export interface VoteReply {
  granted: boolean;
  reason: string;
}

export async function postJson<T>(
  url: string,
  body: unknown,
  opts: { token?: string; timeoutMs: number },
): Promise<T> {
  let res: Response;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}),
      },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(Math.max(1, Math.round(opts.timeoutMs))),
    });
  } catch (err) {
    const reason =
      (err as Error).name === 'TimeoutError'
        ? `no answer within ${opts.timeoutMs} ms`
        : (err as Error).message;
    throw new NodeUnreachableError(`POST ${url}: ${reason}`, { url, action: 'http' }, { cause: err });
  }
  const text = await res.text();
  if (!res.ok)
    throw new PgfleetError('HTTP_ERROR', `POST ${url}: HTTP ${res.status} ${text.slice(0, 200)}`, {
      url,
      status: res.status,
    });
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new PgfleetError('HTTP_ERROR', `POST ${url}: answer is not JSON`, { url });
  }
}

const join = (base: string, path: string) => `${base.replace(/\/+$/, '')}${path}`;

export function notifyPeer(
  keeperUrl: string,
  notice: PeerNotice,
  opts: { token?: string; timeoutMs: number },
) {
  return postJson<{ ok: boolean }>(join(keeperUrl, '/peer/notify'), notice, opts);
}

export function sendHeartbeat(
  witnessUrl: string,
  hb: HeartbeatBody,
  opts: { token?: string; timeoutMs: number },
) {
  return postJson<HeartbeatReply>(join(witnessUrl, '/witness/heartbeat'), hb, opts);
}

export function requestVote(
  witnessUrl: string,
  req: { candidate: string; primary: string },
  opts: { token?: string; timeoutMs: number },
) {
  return postJson<VoteReply>(join(witnessUrl, '/witness/vote'), req, opts);
}
