import { parseLsn } from '@pgfleet/wal';
import { describe, expect, it } from 'vitest';
import { clusterView, formatClusterTable, formatHistoryTable, historyView } from './cluster-view.js';
import type { ClusterSnapshot, MemberRecord } from './dcs/index.js';

const tags = { noFailover: false, failoverPriority: 1 };

function member(name: string, over: Partial<MemberRecord>): MemberRecord {
  return {
    name,
    role: 'standby',
    state: 'streaming',
    timeline: 2,
    walLsn: null,
    receivedLsn: null,
    replayedLsn: null,
    lagBytes: null,
    streaming: true,
    upstream: 'b',
    fenced: false,
    tags,
    keeperUrl: `http://127.0.0.1:80${name === 'a' ? '01' : name === 'b' ? '02' : '03'}`,
    conninfo: `host=10.0.0.${name === 'a' ? 1 : name === 'b' ? 2 : 3} port=5432 user=postgres`,
    updatedAt: '2026-11-27T08:00:00.000Z',
    lease: '1',
    modRevision: '7',
    ...over,
  };
}

const snap: ClusterSnapshot = {
  revision: '9',
  leader: { name: 'b', lease: '1', modRevision: '5' },
  members: [
    member('c', {
      receivedLsn: parseLsn('0/3000100'),
      replayedLsn: parseLsn('0/3000000'),
      tags: { noFailover: true, failoverPriority: 1 },
    }),
    member('b', {
      role: 'primary',
      state: 'running',
      walLsn: parseLsn('0/3000200'),
      streaming: false,
      upstream: null,
    }),
  ],
  config: { paused: false },
  configRevision: null,
  sync: null,
  syncRevision: null,
  history: [
    {
      timeline: 2,
      switchLsn: parseLsn('0/3000060'),
      reason: 'failover: a gone; b at 0/3000060',
      at: '2026-11-27T07:59:00.000Z',
      leader: 'b',
      previousLeader: 'a',
    },
  ],
  failsafe: null,
  invalid: [],
};

describe('clusterView', () => {
  it('shows the leader, lags against its published position, and configured members without a key', () => {
    const v = clusterView('main', snap, [{ name: 'a', conninfo: 'host=10.0.0.1 port=5433' }, { name: 'b' }]);
    expect(v.leader).toBe('b');
    expect(v.members.map((m) => [m.name, m.role, m.state])).toEqual([
      ['a', 'unknown', 'no keeper in etcd'],
      ['b', 'leader', 'running'],
      ['c', 'standby', 'streaming'],
    ]);
    expect(v.members[0]).toMatchObject({ host: '10.0.0.1', port: 5433 });
    expect(v.members[2]).toMatchObject({
      receiveLagBytes: 0x100,
      replayLagBytes: 0x200,
      lsn: '0/3000000',
      port: 5432,
    });
    expect(v.members[1]).toMatchObject({ receiveLagBytes: null, lsn: '0/3000200' });
  });

  it('prints one table, the leader and a pause on the first line', () => {
    const text = formatClusterTable(clusterView('main', { ...snap, config: { paused: true } }));
    const lines = text.split('\n');
    expect(lines[0]).toBe('cluster main: leader b (PAUSED: no automatic failover)');
    expect(lines[1]).toMatch(/^member\s+host\s+role\s+state\s+tl\s+receive lag\s+replay lag\s+tags$/);
    expect(lines[2]).toMatch(/^b\s+10\.0\.0\.2:5432\s+leader\s+running\s+2$/);
    expect(lines[3]).toMatch(/^c\s+10\.0\.0\.3:5432\s+standby\s+streaming\s+2\s+256 B\s+512 B\s+noFailover$/);
  });
});

describe('history', () => {
  it('lists the timeline switches with LSN, leader and reason', () => {
    const h = historyView(snap.history);
    expect(h).toEqual([
      {
        timeline: 2,
        lsn: '0/3000060',
        reason: 'failover: a gone; b at 0/3000060',
        at: '2026-11-27T07:59:00.000Z',
        leader: 'b',
        previousLeader: 'a',
      },
    ]);
    expect(formatHistoryTable(h).split('\n')[1]).toMatch(
      /^2\s+0\/3000060\s+2026-11-27T07:59:00.000Z\s+b\s+a\s+failover: a gone/,
    );
    expect(formatHistoryTable([])).toBe('no timeline switch recorded');
  });
});
