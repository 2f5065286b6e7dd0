/**
 * `pgfleet-keeper rejoin`'s one question: may this node's data directory be rewound into a
 * standby of its peer, and must its server be stopped first? Pure: facts in, plan + reason out.
 */

export interface NodeFacts {
  role: 'primary' | 'standby' | 'down';
  fenced: boolean;
  timeline: number | null;
  /** Why the node is in that state (down cause, ...), for messages. */
  reason: string;
}

export interface RejoinFacts {
  node: string;
  peer: string;
  local: NodeFacts;
  remote: NodeFacts;
  /** pg_rewind matching the data directory's major version, or why there is none. */
  rewind: { found: true; path: string } | { found: false; reason: string };
  /** --force: rewind even an unfenced primary (its writes since the failover are discarded). */
  force: boolean;
}

export type RejoinPlan =
  | { kind: 'nothing'; reason: string }
  | { kind: 'refuse'; reason: string }
  | { kind: 'rejoin'; stopLocal: boolean; reason: string };

export function decideRejoin(f: RejoinFacts): RejoinPlan {
  const { local, remote } = f;
  if (remote.role !== 'primary')
    return {
      kind: 'refuse',
      reason: `peer ${f.peer} is ${remote.role} (${remote.reason}): rejoin needs a running primary to follow`,
    };
  if (remote.fenced)
    return {
      kind: 'refuse',
      reason: `peer ${f.peer} is a fenced primary (switchover in progress, or it was superseded): nothing safe to follow`,
    };
  if (local.role === 'standby')
    return { kind: 'nothing', reason: `${f.node} is already a standby: nothing to rejoin` };
  if (local.role === 'primary' && local.timeline !== null && remote.timeline !== null) {
    if (local.timeline >= remote.timeline)
      return {
        kind: 'refuse',
        reason:
          `${f.node} runs timeline ${local.timeline}, peer ${f.peer} timeline ${remote.timeline}: ` +
          `the peer is not the newer primary, rewinding ${f.node} would throw away the newer history`,
      };
  }
  if (local.role === 'primary' && !local.fenced && !f.force)
    return {
      kind: 'refuse',
      reason:
        `${f.node} is an unfenced primary that may still take writes: fence it first ` +
        `(its keeper does so once it sees ${f.peer} on a newer timeline), or pass --force to discard ` +
        'its writes since the failover',
    };
  if (!f.rewind.found) return { kind: 'refuse', reason: f.rewind.reason };
  const stop = local.role === 'primary';
  return {
    kind: 'rejoin',
    stopLocal: stop,
    reason:
      `rejoining ${f.node} as a standby of ${f.peer} (timeline ${remote.timeline ?? '?'}): ` +
      `${stop ? 'stop the server, ' : ''}pg_rewind, standby.signal + primary_conninfo`,
  };
}
