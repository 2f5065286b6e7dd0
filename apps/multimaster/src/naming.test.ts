import { describe, expect, it } from 'vitest';
import { edgeSlotName, edgesFor, findEdge, nodeOfOrigin, originName, replayOriginName } from './naming.js';
import { serverFiltersOrigin, shouldSkipTransaction } from './origin-filter.js';

describe('naming', () => {
  it('names slots/publications pgfleet_<src>_<dst> and origins pgfleet_<src>', () => {
    expect(edgeSlotName('a', 'b')).toBe('pgfleet_a_b');
    expect(originName('a')).toBe('pgfleet_a');
    expect(nodeOfOrigin('pgfleet_node_1')).toBe('node_1');
    expect(nodeOfOrigin('pg_16394')).toBeNull();
    // Rows replayed from dead letters count as written by their source node.
    expect(replayOriginName('node_1')).toBe('pgfleet_node_1:replay');
    expect(nodeOfOrigin(replayOriginName('node_1'))).toBe('node_1');
  });

  it.each([
    [2, 2],
    [3, 6],
    [5, 20],
  ])('a mesh of %i nodes has %i edges, every ordered pair once', (n, want) => {
    const nodes = Array.from({ length: n }, (_, i) => ({ name: `n${i}` }));
    const edges = edgesFor(nodes);
    expect(edges).toHaveLength(want);
    expect(new Set(edges.map((e) => e.id)).size).toBe(want);
    expect(edges.every((e) => e.source !== e.target && e.origin === `pgfleet_${e.source}`)).toBe(true);
  });

  it('finds an edge by id or by arrow form', () => {
    const edges = edgesFor([{ name: 'a' }, { name: 'b_c' }]);
    expect(findEdge(edges, 'a->b_c')?.slot).toBe('pgfleet_a_b_c');
    expect(findEdge(edges, 'b_c_a')?.target).toBe('a');
    expect(findEdge(edges, 'x->y')).toBeNull();
  });
});

describe('origin filtering', () => {
  it.each([
    [null, false],
    ['pgfleet_b', true],
    ['some_other_origin', true],
  ])('origin %s → skip %s', (origin, want) => {
    expect(shouldSkipTransaction(origin)).toBe(want);
  });
  it.each([
    [150007, false],
    [160000, true],
    [170002, true],
  ])('server %i filters origins itself: %s', (v, want) => {
    expect(serverFiltersOrigin(v)).toBe(want);
  });
});
