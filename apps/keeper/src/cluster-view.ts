import { parseConninfo } from '@pgfleet/connection';
import { formatLsn, type Lsn } from '@pgfleet/wal';
import type { TimelineSwitch } from './cluster-types.js';
import type { ClusterSnapshot, MemberRecord } from './dcs/index.js';
import { formatBytes } from './units.js';

/**
 * The whole cluster as `pgfleet-keeper list` and `GET /cluster` show it, from one etcd read
 * (Patroni's `patronictl list` and `/cluster`), and the timeline history as `history` and
 * `GET /history` show it. Pure: snapshot in, view out.
 */

export interface MemberView {
  name: string;
  host: string | null;
  port: number | null;
  /** 'leader' for the member holding the leader key, else its server's role. */
  role: 'leader' | 'primary' | 'standby' | 'down' | 'unknown';
  state: string;
  timeline: number | null;
  /** Standby: WAL the leader published and this member has not received / replayed, bytes. */
  receiveLagBytes: number | null;
  replayLagBytes: number | null;
  lsn: string | null;
  tags: { noFailover: boolean; failoverPriority: number };
  keeperUrl: string | null;
  /** When its keeper last wrote its key; null for a configured member without a live key. */
  updatedAt: string | null;
}

export interface ClusterView {
  cluster: string;
  leader: string | null;
  paused: boolean;
  members: MemberView[];
}

export interface HistoryEntryView {
  timeline: number;
  lsn: string | null;
  reason: string;
  at: string;
  leader: string;
  previousLeader: string | null;
}

function address(conninfo: string | null): { host: string | null; port: number | null } {
  if (!conninfo) return { host: null, port: null };
  try {
    const p = parseConninfo(conninfo);
    return { host: p.host ?? p.hostaddr ?? null, port: p.port ? Number(p.port) : 5432 };
  } catch {
    return { host: null, port: null };
  }
}

const lag = (leader: Lsn | null, at: Lsn | null): number | null =>
  leader === null || at === null ? null : leader > at ? Number(leader - at) : 0;

export function clusterView(
  cluster: string,
  snap: ClusterSnapshot,
  configured: readonly { name: string; conninfo?: string }[] = [],
): ClusterView {
  const leaderName = snap.leader?.name ?? null;
  const leaderLsn = snap.members.find((m) => m.name === leaderName)?.walLsn ?? null;
  const view = (m: MemberRecord): MemberView => ({
    name: m.name,
    ...address(m.conninfo),
    role: m.name === leaderName && m.role === 'primary' ? 'leader' : m.role,
    state: m.state,
    timeline: m.timeline,
    receiveLagBytes: m.role === 'standby' ? lag(leaderLsn, m.receivedLsn) : null,
    replayLagBytes: m.role === 'standby' ? lag(leaderLsn, m.replayedLsn) : null,
    lsn:
      m.role === 'primary'
        ? m.walLsn === null
          ? null
          : formatLsn(m.walLsn)
        : (m.replayedLsn ?? m.receivedLsn) === null
          ? null
          : formatLsn((m.replayedLsn ?? m.receivedLsn)!),
    tags: { ...m.tags },
    keeperUrl: m.keeperUrl,
    updatedAt: m.updatedAt,
  });
  const members = snap.members.map(view);
  for (const c of configured)
    if (!members.some((m) => m.name === c.name))
      members.push({
        name: c.name,
        ...address(c.conninfo ?? null),
        role: 'unknown',
        state: 'no keeper in etcd',
        timeline: null,
        receiveLagBytes: null,
        replayLagBytes: null,
        lsn: null,
        tags: { noFailover: false, failoverPriority: 1 },
        keeperUrl: null,
        updatedAt: null,
      });
  members.sort((a, b) => a.name.localeCompare(b.name));
  return { cluster, leader: leaderName, paused: snap.config.paused, members };
}

export function historyView(history: readonly TimelineSwitch[]): HistoryEntryView[] {
  return history.map((h) => ({
    timeline: h.timeline,
    lsn: h.switchLsn === null ? null : formatLsn(h.switchLsn),
    reason: h.reason,
    at: h.at,
    leader: h.leader,
    previousLeader: h.previousLeader,
  }));
}

/** Columns of text, left-aligned, two spaces apart, with a header row. */
function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

const bytes = (n: number | null) => (n === null ? '' : formatBytes(n));

export function formatClusterTable(v: ClusterView): string {
  const rows = v.members.map((m) => [
    m.name,
    m.host === null ? '' : `${m.host}${m.port === null ? '' : `:${m.port}`}`,
    m.role,
    m.state,
    m.timeline === null ? '' : String(m.timeline),
    bytes(m.receiveLagBytes),
    bytes(m.replayLagBytes),
    [
      m.tags.noFailover ? 'noFailover' : '',
      m.tags.failoverPriority !== 1 ? `priority ${m.tags.failoverPriority}` : '',
    ]
      .filter(Boolean)
      .join(', '),
  ]);
  const head = `cluster ${v.cluster}: leader ${v.leader ?? 'none'}${v.paused ? ' (PAUSED: no automatic failover)' : ''}`;
  return `${head}\n${table(['member', 'host', 'role', 'state', 'tl', 'receive lag', 'replay lag', 'tags'], rows)}`;
}

export function formatHistoryTable(h: readonly HistoryEntryView[]): string {
  if (h.length === 0) return 'no timeline switch recorded';
  return table(
    ['tl', 'lsn', 'at', 'leader', 'previous', 'reason'],
    h.map((e) => [String(e.timeline), e.lsn ?? '', e.at, e.leader, e.previousLeader ?? '', e.reason]),
  );
}
