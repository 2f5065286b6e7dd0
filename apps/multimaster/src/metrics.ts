import { Counter, Gauge, Registry } from 'prom-client';
import type { EdgeState } from './edge.js';

const STATES: EdgeState[] = ['starting', 'streaming', 'paused', 'reconnecting', 'stopped'];

/** Prometheus metrics of one replicator, on its own registry (no global state). */
export interface EdgeMetrics {
  registry: Registry;
  applied(edge: string, transactions: number, rows: number): void;
  skipped(edge: string, reason: string): void;
  conflict(edge: string, kind: string, resolution: string): void;
  /** Conflict records deleted from a node's pgfleet.conflicts past retention (conflict-retention.ts). */
  conflictRecordsPruned(node: string, n: number): void;
  lag(edge: string, bytes: number | null, seconds: number | null): void;
  state(edge: string, state: EdgeState): void;
}

/**
 * A counter's series by label values, each looked up once: prom-client hashes the labels on
 * every inc() otherwise, and these counters move per transaction and per conflict.
 */
function seriesOf<L extends string>(c: Counter<L>): (...values: string[]) => { inc(n?: number): void } {
  const series = new Map<string, { inc(n?: number): void }>();
  return (...values) => {
    const k = values.join('\u0000');
    let s = series.get(k);
    if (!s) {
      s = c.labels(...values);
      series.set(k, s);
    }
    return s;
  };
}

export function createMetrics(): EdgeMetrics {
  const registry = new Registry();
  const tx = new Counter({
    name: 'pgfleet_mm_applied_transactions_total',
    help: 'Source transactions applied on the target',
    labelNames: ['edge'],
    registers: [registry],
  });
  const rows = new Counter({
    name: 'pgfleet_mm_applied_rows_total',
    help: 'Row changes applied on the target',
    labelNames: ['edge'],
    registers: [registry],
  });
  const skipped = new Counter({
    name: 'pgfleet_mm_skipped_transactions_total',
    help: 'Source transactions handled without applying them, by reason (echo, empty, dead_letter, operator)',
    labelNames: ['edge', 'reason'],
    registers: [registry],
  });
  const conflicts = new Counter({
    name: 'pgfleet_mm_conflicts_total',
    help: 'Conflicts detected, by type and resolution',
    labelNames: ['edge', 'kind', 'resolution'],
    registers: [registry],
  });
  const pruned = new Counter({
    name: 'pgfleet_mm_conflict_records_pruned_total',
    help: 'Conflict records deleted from pgfleet.conflicts past conflictLog retention, by node',
    labelNames: ['node'],
    registers: [registry],
  });
  const lagBytes = new Gauge({
    name: 'pgfleet_mm_lag_bytes',
    help: 'Source WAL not yet applied on the target',
    labelNames: ['edge'],
    registers: [registry],
  });
  const lagSeconds = new Gauge({
    name: 'pgfleet_mm_lag_seconds',
    help: 'Age of the last applied source commit while behind',
    labelNames: ['edge'],
    registers: [registry],
  });
  const state = new Gauge({
    name: 'pgfleet_mm_edge_state',
    help: '1 for the current state of each edge',
    labelNames: ['edge', 'state'],
    registers: [registry],
  });
  const txOf = seriesOf(tx);
  const rowsOf = seriesOf(rows);
  const skippedOf = seriesOf(skipped);
  const conflictsOf = seriesOf(conflicts);
  return {
    registry,
    applied(edge, n, r) {
      txOf(edge).inc(n);
      rowsOf(edge).inc(r);
    },
    skipped(edge, reason) {
      skippedOf(edge, reason).inc();
    },
    conflict(edge, kind, resolution) {
      conflictsOf(edge, kind, resolution).inc();
    },
    conflictRecordsPruned(node, n) {
      pruned.inc({ node }, n);
    },
    lag(edge, bytes, seconds) {
      if (bytes !== null) lagBytes.set({ edge }, bytes);
      if (seconds !== null) lagSeconds.set({ edge }, seconds);
    },
    state(edge, s) {
      for (const x of STATES) state.set({ edge, state: x }, x === s ? 1 : 0);
    },
  };
}
