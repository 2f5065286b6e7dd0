import { describe, expect, it } from 'vitest';
import { rejoinSource } from './rejoin-source.js';

const c = {
  node: { name: 'a', conninfo: 'host=127.0.0.1 port=5432' },
  cluster: {
    name: 'main',
    syncCount: 0,
    failsafeMode: false,
    members: [
      { name: 'a', conninfo: 'host=10.0.0.1 user=postgres' },
      { name: 'c', conninfo: 'host=10.0.0.3 user=postgres password=x' },
    ],
  },
} as unknown as Parameters<typeof rejoinSource>[0];

const leader = (name: string) => ({ name, lease: '1', modRevision: '1' });
const member = (name: string, conninfo: string) => ({ name, conninfo }) as never;

describe('rejoinSource', () => {
  it('follows the leader through its conninfo under cluster.members', () => {
    expect(rejoinSource(c, { leader: leader('c'), members: [member('c', 'host=/run/pg')] })).toEqual({
      name: 'c',
      conninfo: 'host=10.0.0.3 user=postgres password=x',
    });
  });

  it('falls back to the conninfo the leader published', () => {
    expect(rejoinSource(c, { leader: leader('b'), members: [member('b', 'host=10.0.0.2')] })).toEqual({
      name: 'b',
      conninfo: 'host=10.0.0.2',
    });
  });

  it.each([
    ['no leader', null, /no member holds the leader key/],
    ['this node leads', leader('a'), /a holds the leader key itself/],
    ['a leader nobody gives a conninfo for', leader('d'), /no conninfo known for the leader d/],
  ])('refuses with %s', (_what, l, message) => {
    const r = rejoinSource(c, { leader: l, members: [] });
    expect('error' in r && r.error).toMatch(message);
  });
});
