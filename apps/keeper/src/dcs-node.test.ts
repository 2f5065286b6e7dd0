import { describe, expect, it } from 'vitest';
import { parseConfig } from './config.js';
import type { ClusterSnapshot, Handover, MemberRecord } from './dcs/index.js';
import { leaderAddress, slotName } from './dcs-node.js';
import { activeHandover } from './dcs-standby-loop.js';

const parsed = parseConfig({
  node: { name: 'a', conninfo: 'host=/var/run/postgresql user=postgres' },
  dcs: { etcd: { endpoints: ['http://127.0.0.1:2379'] } },
  cluster: {
    members: [
      { name: 'a' },
      { name: 'b', conninfo: 'host=10.0.0.2 port=5433 user=postgres password=x' },
      { name: 'c', conninfo: 'host=10.0.0.3 user=postgres' },
    ],
  },
});
// A member known only from what it published (config validation requires a conninfo for
// every member; leaderAddress still copes without one).
const config = {
  ...parsed,
  cluster: {
    ...parsed.cluster,
    members: parsed.cluster.members.map((m) => (m.name === 'c' ? { name: 'c' } : m)),
  },
};

const record = (conninfo: string | null) => ({ conninfo }) as MemberRecord;

describe('slotName', () => {
  it.each([
    ['b', 'b'],
    ['Node-2.east', 'node_2_east'],
  ])('%s → %s', (name, slot) => expect(slotName(name)).toBe(slot));
});

describe('leaderAddress', () => {
  it("prefers the operator's cluster.members conninfo over what the leader published", () => {
    expect(leaderAddress(config, 'b', record('host=/tmp port=5432'))).toEqual({
      host: '10.0.0.2',
      port: '5433',
    });
  });

  it('takes the published conninfo of a member not listed with one, default port 5432', () => {
    expect(leaderAddress(config, 'c', record('host=10.0.0.3 user=postgres'))).toEqual({
      host: '10.0.0.3',
      port: '5432',
    });
  });

  it('refuses a Unix socket directory (it is on the leader host), naming the fix', () => {
    const r = leaderAddress(config, 'c', record('host=/var/run/postgresql port=5432'));
    expect(r).toEqual({
      error: expect.stringMatching(/c's conninfo names no network host .*cluster.members/),
    });
  });

  it('says so when nothing is known', () => {
    expect(leaderAddress(config, 'c', undefined)).toEqual({
      error: 'no conninfo known for c (list it under cluster.members)',
    });
  });
});

describe('activeHandover', () => {
  const snap = (handover?: Handover) =>
    ({ config: { paused: false, ...(handover ? { handover } : {}) } }) as unknown as ClusterSnapshot;
  const now = Date.parse('2026-11-27T08:00:00.000Z');
  const h: Handover = {
    kind: 'switchover',
    from: 'a',
    to: 'c',
    force: false,
    until: '2026-11-27T08:01:00.000Z',
  };

  it('applies to a handover from the former leader that has not timed out', () => {
    expect(activeHandover(snap(h), 'a', now)).toEqual(h);
  });

  it.each([
    ['none requested', undefined, 'a', now],
    ['from another leader (an old request)', h, 'b', now],
    ['timed out', h, 'a', Date.parse('2026-11-27T08:01:00.001Z')],
    ['an unreadable deadline', { ...h, until: 'soon' }, 'a', now],
  ])('ignores %s', (_what, handover, former, at) => {
    expect(activeHandover(snap(handover as Handover | undefined), former as string, at as number)).toBeNull();
  });
});
