import { keeperTiming } from '@pgfleet/keeper';
import { describe, expect, it } from 'vitest';
import { findHaproxy } from '../support/haproxy.js';
import { FAULTS, type FaultName, runKeeperTrial, type TrialResult } from '../support/keeper-trial.js';

/**
 * Issue 9: never two writers, under partial failures and misconfiguration, proven the
 * adversarial way. Each fault runs once on a fresh pair (the bench runs ten of each): keepers
 * as `pgfleet-keeper run` processes, a witness, a real HAProxy with Patroni's documented check
 * and with HAProxy's plain `option httpchk`, a client writing through each, and a watcher
 * writing on each server directly every 50 ms on held connections.
 */

const haproxy = findHaproxy();
const timing = keeperTiming({ intervalMs: 500, connectTimeoutMs: 400, fenceAfterMs: 1000 });

/** What to print when an assertion fails: the numbers, the trace, the keepers' last words. */
function explain(r: TrialResult): string {
  const { logs, attempts: _, ...facts } = r;
  const tail = Object.entries(logs)
    .map(
      ([k, lines]) =>
        `--- ${k}\n${lines
          .filter((l) => !l.includes('"level":20'))
          .slice(-25)
          .join('\n')}`,
    )
    .join('\n');
  return `${JSON.stringify(facts, null, 1)}\n${tail}`;
}

const report = (r: TrialResult) =>
  console.log(
    `keeper e2e (PostgreSQL ${r.major}) ${r.fault}: first write through HAProxy ${r.ttfwMs ?? '-'} ms, ` +
      `longest gap ${r.gapMs} ms, two-writer moments ${r.twoWriters.count}, lost acknowledged ${r.lostAcked}/${r.acked}, ` +
      `misrouted ${r.misrouted.patroni}+${r.misrouted.plain}, server stops ${r.serverStops}`,
  );

describe.skipIf(!haproxy)('keeper e2e: never two writers (HAProxy, adversarial watchers)', () => {
  const faults = Object.keys(FAULTS) as FaultName[];

  it.each(faults)('%s', async (fault) => {
    const spec = FAULTS[fault];
    const r = await runKeeperTrial(fault);
    report(r);
    const why = explain(r);
    // Never a moment where two servers took writes; HAProxy never sent one to a standby or a
    // fenced primary, with Patroni's check or with HAProxy's plain OPTIONS / check.
    expect(r.twoWriters.count, why).toBe(0);
    expect(r.misrouted, why).toEqual({ patroni: 0, plain: 0 });
    if (spec.sync) expect(r.lostAcked, why).toBe(0);
    expect(r.acked, why).toBeGreaterThan(50);
    if (spec.failover) {
      expect(r.failedOver, why).toBe(true);
      expect(r.promotions, why).toBe(1);
      expect(r.ttfwMs, why).not.toBeNull();
      expect(r.ttfwMs!, why).toBeLessThan(15_000);
    } else {
      expect(r.failedOver, why).toBe(false);
      expect(r.promotions, why).toBe(0);
    }
    if (fault.startsWith('postmaster-stop') || fault === 'server-freeze')
      // It could not be fenced with SQL: its keeper stopped it, before the standby's deadline.
      expect(r.serverStops, why).toBe(1);
    if (!spec.sync)
      // Async: what the old primary acknowledged and the standby never received is lost. Its
      // walsender streams until its keeper stops it, so that is the replication lag of that
      // moment; the window can never exceed fenceAfter + escalation (the README's bound).
      expect(r.lossWindowMs, why).toBeLessThanOrEqual(timing.fenceAfterMs + timing.escalationMs);
    if (fault.startsWith('wrong-'))
      // The pair kept working: the healthy primary kept its clients through HAProxy.
      expect(r.gapMs, why).toBeLessThan(timing.promoteAfterMs);
  });
});
