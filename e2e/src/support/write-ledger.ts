/**
 * What the adversarial watchers saw, and what it proves. Pure: the watchers (write-watch.ts)
 * record every write attempt; these functions judge them.
 */

export interface WriteAttempt {
  /** Who wrote: a node name for a direct watcher, 'haproxy' / 'haproxy-plain' for clients. */
  writer: string;
  /** Attempt number of this writer (the row's key together with `writer`). */
  n: number;
  /** Client clock (Date.now()) when the INSERT was sent, and when it ended. */
  sentAt: number;
  doneAt: number;
  /** The server acknowledged the commit. */
  ok: boolean;
  /** Acknowledged: the node that took it (from the server's port) and its clock_timestamp(). */
  node?: string;
  serverAt?: number;
  /** Failed: SQLSTATE or socket error code, and the message. */
  code?: string;
  error?: string;
}

export interface TwoWriters {
  /** Acknowledged writes taken by a node while another node's acknowledged writes span that moment. */
  count: number;
  examples: string[];
}

/**
 * Never two writers: for every pair of nodes, the span of one node's acknowledged writes (by
 * the server's own clock, one clock for all loopback servers) must not contain a write
 * acknowledged by the other. One failover per trial: all of the old primary's writes precede
 * all of the new one's.
 */
export function twoWriterMoments(attempts: WriteAttempt[]): TwoWriters {
  const byNode = new Map<string, number[]>();
  for (const a of attempts)
    if (a.ok && a.node && a.serverAt !== undefined) {
      const list = byNode.get(a.node) ?? [];
      list.push(a.serverAt);
      byNode.set(a.node, list);
    }
  const spans = [...byNode].map(([node, at]) => ({ node, at, from: Math.min(...at), to: Math.max(...at) }));
  let count = 0;
  const examples: string[] = [];
  for (const x of spans)
    for (const y of spans) {
      if (x.node === y.node) continue;
      for (const t of x.at)
        if (t >= y.from && t <= y.to) {
          count++;
          if (examples.length < 5)
            examples.push(
              `${x.node} took a write at ${new Date(t).toISOString()} while ${y.node} took writes from ${new Date(y.from).toISOString()} to ${new Date(y.to).toISOString()}`,
            );
        }
    }
  return { count, examples };
}

/** Acknowledged writes whose rows the surviving primary lacks. */
export function lostAcknowledged(attempts: WriteAttempt[], present: Set<string>): WriteAttempt[] {
  return attempts.filter((a) => a.ok && !present.has(`${a.writer}/${a.n}`));
}

/** SQLSTATE 25006: a read-only transaction, i.e. the write reached a standby or a fenced primary. */
export const READ_ONLY = '25006';

/** Writes a load balancer sent to a server that could not take them (standby, fenced primary). */
export function misrouted(attempts: WriteAttempt[], via: string): WriteAttempt[] {
  return attempts.filter((a) => a.writer === via && !a.ok && a.code === READ_ONLY);
}

/** First acknowledged write of `writer` taken by `node` after `from` (client time of the ack). */
export function firstAck(
  attempts: WriteAttempt[],
  writer: string,
  node: string,
  from: number,
): number | null {
  let best: number | null = null;
  for (const a of attempts)
    if (
      a.writer === writer &&
      a.ok &&
      a.node === node &&
      a.doneAt >= from &&
      (best === null || a.doneAt < best)
    )
      best = a.doneAt;
  return best;
}

/** Longest time without an acknowledged write of `writer` within [from, to]. */
export function longestGap(attempts: WriteAttempt[], writer: string, from: number, to: number): number {
  const acks = attempts
    .filter((a) => a.writer === writer && a.ok && a.doneAt >= from && a.doneAt <= to)
    .map((a) => a.doneAt)
    .sort((x, y) => x - y);
  let gap = 0;
  let last = from;
  for (const t of acks) {
    gap = Math.max(gap, t - last);
    last = t;
  }
  return Math.max(gap, to - last);
}
