import { describe, expect, it } from 'vitest';
import { createMetrics } from './metrics.js';

describe('replicator metrics', () => {
  it('counts per edge and label, each series on its own', async () => {
    const m = createMetrics();
    m.applied('a_b', 3, 12);
    m.applied('a_b', 2, 8);
    m.applied('b_a', 1, 1);
    m.skipped('a_b', 'echo');
    m.skipped('a_b', 'echo');
    m.skipped('a_b', 'empty');
    m.conflict('b_a', 'update_differs', 'apply');
    m.state('a_b', 'streaming');
    const text = await m.registry.metrics();
    expect(text).toContain('pgfleet_mm_applied_transactions_total{edge="a_b"} 5');
    expect(text).toContain('pgfleet_mm_applied_rows_total{edge="a_b"} 20');
    expect(text).toContain('pgfleet_mm_applied_transactions_total{edge="b_a"} 1');
    expect(text).toContain('pgfleet_mm_skipped_transactions_total{edge="a_b",reason="echo"} 2');
    expect(text).toContain('pgfleet_mm_skipped_transactions_total{edge="a_b",reason="empty"} 1');
    expect(text).toContain(
      'pgfleet_mm_conflicts_total{edge="b_a",kind="update_differs",resolution="apply"} 1',
    );
    expect(text).toContain('pgfleet_mm_edge_state{edge="a_b",state="streaming"} 1');
    expect(text).toContain('pgfleet_mm_edge_state{edge="a_b",state="paused"} 0');
  });
});
