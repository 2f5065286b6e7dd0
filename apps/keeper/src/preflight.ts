import { redactConninfo, withConnection } from '@pgfleet/connection';
import { detectRole, type RoleInfo, replicationStatus, walReceiverStatus } from '@pgfleet/roles';
import type { KeeperConfig } from './config.js';

/**
 * What `check` reports and what `run` refuses to start on: each node of the configuration
 * probed once, and the answers judged. A configuration problem (credentials refused, no such
 * host, no password, a peer.conninfo that misses the server this node replicates with) is
 * something only the operator can fix, and a keeper running with it would misjudge a live
 * server as dead. A node that is merely down is what the keeper is for.
 */

export type Severity = 'ok' | 'down' | 'config';

export interface Finding {
  /** The configuration key that names the node: node.conninfo, peer.conninfo, members.<name>. */
  key: string;
  node: string;
  /** What the node answered as: primary, standby, or down. */
  role: string;
  /** Why (never a password). */
  reason: string;
  severity: Severity;
  line: string;
}

export interface NodeProbe {
  key: string;
  node: string;
  info: RoleInfo;
}

/** The local server's own replication, which tells a wrong peer.conninfo from a dead peer. */
export interface LocalReplication {
  /** Local standby: its walreceiver streams from this address. */
  receiverStreamingFrom?: string;
  /** Local primary: the peer (by application_name) streams from it. */
  peerStreams?: boolean;
}

const HINTS: Record<string, string> = {
  '28P01': 'check the user and password (or ~/.pgpass, PGPASSWORD)',
  '28000': 'check the user, and pg_hba.conf on that server',
  '3D000': 'check dbname',
  '42501': 'the keeper needs a superuser (or pg_monitor + pg_signal_backend and EXECUTE on pg_promote)',
};

/** Pure: one probe (and the local server's replication) in, one finding out. */
export function judgeNode(p: NodeProbe, local: LocalReplication, peerName: string): Finding {
  const { key, node, info } = p;
  // detectRole prefixes its reason with the node's host:port label; the key says which node.
  const reason = redactConninfo(info.reason.replace(/^\S+: /, ''));
  const base = { key, node, role: info.role, reason };
  if (info.role !== 'down') return { ...base, severity: 'ok', line: `${key}: node ${node} is ${info.role}` };
  if (info.answered) {
    const state = info.sqlState ?? '';
    const alive = [
      'too_many_connections',
      'starting_up',
      'shutting_down',
      'crash_recovery',
      'not_consistent',
      'hot_standby_off',
    ];
    const hint = HINTS[state];
    const line = `${key}: node ${node} answered: ${reason}`;
    if (alive.includes(info.downCause ?? ''))
      return { ...base, severity: 'down', line: `${line} (alive, not ready)` };
    return { ...base, severity: 'config', line: hint ? `${line}: ${hint} in ${key}` : line };
  }
  if (info.downCause === 'host_not_found' || info.downCause === 'error')
    return { ...base, severity: 'config', line: `${key}: node ${node}: ${reason}` };
  if (key === 'peer.conninfo' && info.downCause === 'refused') {
    if (local.receiverStreamingFrom)
      return {
        ...base,
        severity: 'config',
        line: `${key}: node ${node} refuses connections (${reason}), yet this standby streams from its primary at ${local.receiverStreamingFrom}: ${key} does not point at that server`,
      };
    if (local.peerStreams)
      return {
        ...base,
        severity: 'config',
        line: `${key}: node ${node} refuses connections (${reason}), yet ${peerName} streams from this primary: ${key} does not point at that server`,
      };
  }
  return { ...base, severity: 'down', line: `${key}: node ${node} is down: ${reason}` };
}

/** Probes every node of the configuration once (I/O) and judges the answers. */
export async function preflight(c: KeeperConfig): Promise<Finding[]> {
  const timeoutMs = Math.max(c.connectTimeoutMs, 1000);
  const nodes: Array<[string, string, string]> =
    c.mode === 'witness'
      ? Object.entries(c.members).map(([name, conninfo]) => [`members.${name}`, name, conninfo])
      : c.dcs
        ? // On etcd: this node, and every other member this keeper probes directly.
          [
            ['node.conninfo', c.node.name, c.node.conninfo],
            ...c.cluster.members.flatMap(
              (m, i): Array<[string, string, string]> =>
                m.conninfo && m.name !== c.node.name
                  ? [[`cluster.members.${i}.conninfo`, m.name, m.conninfo]]
                  : [],
            ),
          ]
        : [
            ['node.conninfo', c.node.name, c.node.conninfo],
            ['peer.conninfo', c.peer.name, c.peer.conninfo],
          ];
  const probes: NodeProbe[] = [];
  for (const [key, node, conninfo] of nodes)
    probes.push({ key, node, info: await detectRole(conninfo, { timeoutMs }) });
  const local: LocalReplication = {};
  const self = probes[0];
  if (c.mode === 'node' && self && self.info.role !== 'down') {
    try {
      await withConnection(
        c.node.conninfo,
        { connectTimeoutMs: timeoutMs, statementTimeoutMs: timeoutMs },
        async (q) => {
          if (self.info.role === 'standby') {
            const r = await walReceiverStatus(q);
            if (r?.status === 'streaming') local.receiverStreamingFrom = `${r.senderHost}:${r.senderPort}`;
          } else {
            const rows = await replicationStatus(q);
            local.peerStreams = rows.some(
              (r) => r.applicationName === c.peer.name && r.state === 'streaming',
            );
          }
        },
      );
    } catch {
      // The probe above already said what there is to say about the local node.
    }
  }
  return probes.map((p) => judgeNode(p, local, c.peer.name));
}
