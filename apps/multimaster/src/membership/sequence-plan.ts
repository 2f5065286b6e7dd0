/** One sequence as it stands on one node. */
export interface SequenceState {
  increment: bigint;
  minValue: bigint;
  maxValue: bigint;
  /** The value nextval() returns next (last_value + increment once called, else last_value). */
  next: bigint;
  /** Largest value this sequence handed out on this node, or null if it never did. */
  lastIssued: bigint | null;
  /** Largest value of the columns that default to this sequence, on this node (null: empty). */
  columnMax: bigint | null;
}

export interface SequenceFacts {
  /** `schema.name` of the sequence. */
  sequence: string;
  /** Columns using it, `schema.table.column`. */
  usedBy: string[];
  /** Per node name; null when the sequence does not exist on that node. */
  perNode: Record<string, SequenceState | null>;
}

export type SequenceAction =
  | { kind: 'unchanged'; increment: bigint; next: bigint }
  | { kind: 'alter'; from: { increment: bigint; next: bigint }; increment: bigint; start: bigint }
  | { kind: 'missing' }
  | { kind: 'invalid'; reason: string };

export interface SequenceStep {
  node: string;
  sequence: string;
  usedBy: string[];
  /** The residue class this node's values fall in: value ≡ residue (mod stride). */
  residue: bigint;
  action: SequenceAction;
}

/** Smallest value strictly greater than `above` that is ≡ residue (mod stride). */
export function nextAligned(above: bigint, residue: bigint, stride: bigint): bigint {
  if (stride <= 0n) throw new RangeError('stride must be positive');
  const r = ((residue % stride) + stride) % stride;
  const base = above + 1n;
  const m = ((base % stride) + stride) % stride;
  return base + ((r - m + stride) % stride);
}

/** Residue of the node at `index` (0-based position in `nodes`): 1, 2, …, stride−1, 0. */
export function residueFor(index: number, stride: bigint): bigint {
  return BigInt(index + 1) % stride;
}

const maxOf = (values: Array<bigint | null>): bigint | null =>
  values.reduce<bigint | null>((m, v) => (v === null ? m : m === null || v > m ? v : m), null);

/**
 * Plans node-unique sequence values: on node i every sequence gets `INCREMENT BY stride`
 * and restarts at the first value ≡ residue(i) (mod stride) above the largest value seen on
 * any node (columns and sequences alike), so no two nodes ever hand out the same value and
 * none repeats a value that already exists. A sequence already stepping by `stride` in its
 * node's residue class is left alone, so running it twice changes nothing. Pure.
 */
export function planSequenceOffsets(
  nodes: string[],
  sequences: SequenceFacts[],
  stride: bigint,
): SequenceStep[] {
  if (stride < BigInt(nodes.length))
    throw new RangeError(`stride ${stride} is smaller than the mesh (${nodes.length} nodes)`);
  const out: SequenceStep[] = [];
  for (const s of sequences) {
    const states = Object.values(s.perNode);
    const ceiling = maxOf(states.flatMap((st) => (st ? [st.columnMax, st.lastIssued] : [])));
    nodes.forEach((node, i) => {
      const residue = residueFor(i, stride);
      const st = s.perNode[node] ?? null;
      const step = { node, sequence: s.sequence, usedBy: s.usedBy, residue };
      if (!st) {
        out.push({ ...step, action: { kind: 'missing' } });
        return;
      }
      if (st.increment < 0n) {
        out.push({
          ...step,
          action: { kind: 'invalid', reason: 'descending sequence: node-unique offsets need INCREMENT > 0' },
        });
        return;
      }
      if (st.increment === stride && ((st.next % stride) + stride) % stride === residue) {
        out.push({ ...step, action: { kind: 'unchanged', increment: st.increment, next: st.next } });
        return;
      }
      const floor = st.minValue - 1n;
      const above = ceiling === null || ceiling < floor ? floor : ceiling;
      const start = nextAligned(above, residue, stride);
      if (start > st.maxValue) {
        out.push({
          ...step,
          action: {
            kind: 'invalid',
            reason: `next node-unique value ${start} exceeds MAXVALUE ${st.maxValue}`,
          },
        });
        return;
      }
      out.push({
        ...step,
        action: { kind: 'alter', from: { increment: st.increment, next: st.next }, increment: stride, start },
      });
    });
  }
  return out;
}
