import { describe, expect, it } from 'vitest';
import {
  nextAligned,
  planSequenceOffsets,
  residueFor,
  type SequenceFacts,
  type SequenceState,
} from './sequence-plan.js';

describe('nextAligned', () => {
  it.each([
    // above, residue, stride, expected
    [0n, 1n, 3n, 1n],
    [0n, 0n, 3n, 3n],
    [1n, 1n, 3n, 4n],
    [100n, 2n, 3n, 101n],
    [101n, 2n, 3n, 104n],
    [-5n, 1n, 4n, -3n],
    [9n, 0n, 10n, 10n],
    [10n, 0n, 10n, 20n],
    [9007199254740993n, 1n, 2n, 9007199254740995n],
  ])('smallest value > %s that is ≡ %s mod %s is %s', (above, residue, stride, want) => {
    const v = nextAligned(above, residue, stride);
    expect(v).toBe(want);
    expect(v > above).toBe(true);
    expect((((v - residue) % stride) + stride) % stride).toBe(0n);
  });

  it('rejects a non-positive stride', () => {
    expect(() => nextAligned(1n, 0n, 0n)).toThrow(RangeError);
  });
});

const seq = (over: Partial<SequenceState> = {}): SequenceState => ({
  increment: 1n,
  minValue: 1n,
  maxValue: 2147483647n,
  next: 1n,
  lastIssued: null,
  columnMax: null,
  ...over,
});

const facts = (perNode: SequenceFacts['perNode']): SequenceFacts => ({
  sequence: 'app.t_id_seq',
  usedBy: ['app.t.id'],
  perNode,
});

describe('planSequenceOffsets', () => {
  it('gives each node its own residue class above the largest value seen on any node', () => {
    const steps = planSequenceOffsets(
      ['a', 'b', 'c'],
      [
        facts({
          a: seq({ next: 11n, lastIssued: 10n, columnMax: 10n }),
          b: seq({ next: 8n, lastIssued: 7n, columnMax: 12n }),
          c: seq(),
        }),
      ],
      3n,
    );
    expect(steps.map((s) => [s.node, s.residue, s.action])).toEqual([
      ['a', 1n, { kind: 'alter', from: { increment: 1n, next: 11n }, increment: 3n, start: 13n }],
      ['b', 2n, { kind: 'alter', from: { increment: 1n, next: 8n }, increment: 3n, start: 14n }],
      ['c', 0n, { kind: 'alter', from: { increment: 1n, next: 1n }, increment: 3n, start: 15n }],
    ]);
  });

  it('never lets two nodes hand out the same value, whatever they held before', () => {
    const cases: Array<Record<string, SequenceState>> = [
      { a: seq(), b: seq() },
      { a: seq({ next: 101n, lastIssued: 100n, columnMax: 100n }), b: seq({ columnMax: 250n }) },
      { a: seq({ increment: 5n, next: 17n, lastIssued: 12n }), b: seq({ next: 3n, lastIssued: 2n }) },
    ];
    for (const perNode of cases) {
      const steps = planSequenceOffsets(['a', 'b'], [facts(perNode)], 4n);
      const issued = new Set<bigint>();
      const existing = Object.values(perNode).flatMap((s) => [s.columnMax ?? 0n, s.lastIssued ?? 0n]);
      for (const s of steps) {
        expect(s.action.kind).toBe('alter');
        if (s.action.kind !== 'alter') continue;
        for (let k = 0n; k < 50n; k++) {
          const v = s.action.start + k * s.action.increment;
          expect(issued.has(v)).toBe(false);
          expect(existing.every((e) => v > e)).toBe(true);
          issued.add(v);
        }
      }
    }
  });

  it('leaves a sequence alone that already steps by the stride in its residue class (idempotent)', () => {
    const steps = planSequenceOffsets(
      ['a', 'b'],
      [facts({ a: seq({ increment: 2n, next: 21n, columnMax: 40n }), b: seq({ increment: 2n, next: 42n }) })],
      2n,
    );
    expect(steps.map((s) => s.action.kind)).toEqual(['unchanged', 'unchanged']);
  });

  it('re-aligns when the stride grows (a node joined)', () => {
    const steps = planSequenceOffsets(
      ['a', 'b', 'c'],
      [
        facts({
          a: seq({ increment: 2n, next: 21n, lastIssued: 19n, columnMax: 40n }),
          b: seq({ increment: 2n, next: 42n, lastIssued: 40n }),
          c: seq(),
        }),
      ],
      3n,
    );
    expect(steps.map((s) => (s.action.kind === 'alter' ? s.action.start : s.action.kind))).toEqual([
      43n,
      41n,
      42n,
    ]);
  });

  it('reports a missing sequence, a descending one and one that would pass MAXVALUE', () => {
    const steps = planSequenceOffsets(
      ['a', 'b', 'c'],
      [facts({ a: null, b: seq({ increment: -1n }), c: seq({ maxValue: 100n, columnMax: 99n }) })],
      3n,
    );
    expect(steps.map((s) => s.action.kind)).toEqual(['missing', 'invalid', 'invalid']);
    expect(steps[2]?.action).toMatchObject({ reason: expect.stringContaining('MAXVALUE 100') });
  });

  it('starts at MINVALUE or above when nothing was issued yet', () => {
    const steps = planSequenceOffsets(
      ['a', 'b'],
      [facts({ a: seq({ minValue: 1000n, next: 1000n }), b: seq() })],
      2n,
    );
    expect(steps.map((s) => (s.action.kind === 'alter' ? s.action.start : null))).toEqual([1001n, 2n]);
  });

  it('refuses a stride smaller than the mesh', () => {
    expect(() => planSequenceOffsets(['a', 'b', 'c'], [], 2n)).toThrow(/stride 2/);
  });

  it('numbers residues 1, 2, …, stride−1, 0 in node order', () => {
    expect([0, 1, 2, 3].map((i) => residueFor(i, 4n))).toEqual([1n, 2n, 3n, 0n]);
    expect([0, 1].map((i) => residueFor(i, 10n))).toEqual([1n, 2n]);
  });
});
