import { Counter, Gauge, Registry } from 'prom-client';

const ROLES = ['primary', 'standby', 'down', 'unknown', 'witness'] as const;

/**
 * Prometheus metrics of one keeper. Each keeper owns its registry (never prom-client's global
 * one), so several keepers can run in one process (tests, the demo).
 */
export class KeeperMetrics {
  readonly registry = new Registry();
  private readonly role: Gauge;
  readonly probeFailures: Counter;
  readonly consecutiveFailures: Gauge;
  readonly probeLatency: Gauge;
  readonly promotions: Counter;
  readonly degrades: Counter;
  readonly restores: Counter;
  readonly fences: Counter;
  readonly lagBytes: Gauge;
  readonly fenced: Gauge;
  readonly syncDegraded: Gauge;
  readonly iterationErrors: Counter;
  readonly serverStops: Counter;
  readonly writeLease: Gauge;

  constructor(node: string) {
    this.registry.setDefaultLabels({ node });
    const registers = [this.registry];
    this.role = new Gauge({
      name: 'pgfleet_keeper_role',
      help: '1 for the role the local server has now (primary, standby, down), 0 for the others',
      labelNames: ['role'],
      registers,
    });
    this.probeFailures = new Counter({
      name: 'pgfleet_keeper_probe_failures_total',
      help: 'Failed probes of the peer server',
      registers,
    });
    this.consecutiveFailures = new Gauge({
      name: 'pgfleet_keeper_consecutive_failures',
      help: 'Consecutive failed checks of the peer (primary when standby, standby when primary)',
      registers,
    });
    this.probeLatency = new Gauge({
      name: 'pgfleet_keeper_last_probe_latency_seconds',
      help: 'Duration of the last probe of the peer server',
      registers,
    });
    this.promotions = new Counter({
      name: 'pgfleet_keeper_promotions_total',
      help: 'Promotions carried out by this keeper',
      registers,
    });
    this.degrades = new Counter({
      name: 'pgfleet_keeper_sync_degrades_total',
      help: 'Times synchronous replication was switched off because the standby failed',
      registers,
    });
    this.restores = new Counter({
      name: 'pgfleet_keeper_sync_restores_total',
      help: 'Times synchronous replication was switched back on',
      registers,
    });
    this.fences = new Counter({
      name: 'pgfleet_keeper_fences_total',
      help: 'Times this keeper fenced its server',
      registers,
    });
    this.lagBytes = new Gauge({
      name: 'pgfleet_keeper_replication_lag_bytes',
      help: 'Standby: WAL it would lack if promoted now. Primary: bytes its standby has not replayed',
      registers,
    });
    this.fenced = new Gauge({
      name: 'pgfleet_keeper_fenced',
      help: '1 when the server is fenced',
      registers,
    });
    this.syncDegraded = new Gauge({
      name: 'pgfleet_keeper_sync_degraded',
      help: '1 when synchronous replication is configured but switched off',
      registers,
    });
    this.iterationErrors = new Counter({
      name: 'pgfleet_keeper_iteration_errors_total',
      help: 'Loop iterations that failed with an unexpected error (logged, loop continued)',
      registers,
    });
    this.serverStops = new Counter({
      name: 'pgfleet_keeper_server_stops_total',
      help: 'Times this keeper stopped its own server hard because it could not be fenced otherwise',
      registers,
    });
    this.writeLease = new Gauge({
      name: 'pgfleet_keeper_write_lease',
      help: '1 while this keeper holds the write lease (/primary answers 200)',
      registers,
    });
    this.setRole('unknown');
  }

  setRole(role: (typeof ROLES)[number]): void {
    for (const r of ROLES) this.role.set({ role: r }, r === role ? 1 : 0);
  }
}
