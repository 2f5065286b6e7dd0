import type { KeeperConfig } from './config.js';
import type { ClusterSnapshot } from './dcs/index.js';

/**
 * Whom `pgfleet-keeper rejoin` follows on etcd: the member holding the leader key, reached by
 * its conninfo under this node's cluster.members (which carries this cluster's credentials),
 * else the one it published. Pure.
 */
export function rejoinSource(
  c: Pick<KeeperConfig, 'node' | 'cluster'>,
  snap: Pick<ClusterSnapshot, 'leader' | 'members'>,
): { name: string; conninfo: string } | { error: string } {
  const leader = snap.leader?.name;
  if (!leader) return { error: 'no member holds the leader key in etcd: there is no primary to follow yet' };
  if (leader === c.node.name)
    return { error: `${leader} holds the leader key itself: it is the primary, not a node to rejoin` };
  const conninfo =
    c.cluster.members.find((m) => m.name === leader)?.conninfo ??
    snap.members.find((m) => m.name === leader)?.conninfo;
  if (!conninfo)
    return {
      error: `no conninfo known for the leader ${leader}: list it under cluster.members or pass --primary-conninfo`,
    };
  return { name: leader, conninfo };
}
