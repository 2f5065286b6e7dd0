import { availableParallelism, loadavg } from 'node:os';
import { FAULTS, type FaultName, runKeeperTrial, type TrialResult } from '../support/keeper-trial.js';
import { fmtMs, summarize } from './stats.js';

/**
 * Issue 9's bench: every fault of the e2e suite, `trials` times on fresh pairs, through a
 * real HAProxy with Patroni's documented check. One table per PostgreSQL major: time to the
 * first write acknowledged through HAProxy by the new primary (min/median/max), or the longest
 * write gap when the primary must stay, and what the ledgers prove.
 */

const say = (line = '') => process.stdout.write(`${line}\n`);

export interface FaultRow {
  fault: FaultName;
  results: TrialResult[];
}

function row(r: FaultRow): string {
  const spec = FAULTS[r.fault];
  const ok = r.results.filter((x) => !spec.failover || x.ttfwMs !== null);
  const ttfw = summarize(ok.map((x) => x.ttfwMs ?? 0));
  const gap = summarize(r.results.map((x) => x.gapMs));
  const up = summarize(r.results.filter((x) => x.upMs !== null).map((x) => x.upMs!));
  const timing = spec.failover
    ? `${fmtMs(ttfw.min)} / ${fmtMs(ttfw.median)} / ${fmtMs(ttfw.max)}${ok.length < r.results.length ? ` (${r.results.length - ok.length} never)` : ''} | ${fmtMs(up.median)} / ${fmtMs(up.max)}`
    : `no failover; longest write gap ${fmtMs(gap.min)} / ${fmtMs(gap.median)} / ${fmtMs(gap.max)} | -`;
  const sum = (f: (x: TrialResult) => number) => r.results.reduce((n, x) => n + f(x), 0);
  const lost = spec.sync
    ? String(sum((x) => x.lostAcked))
    : `${sum((x) => x.lostAcked)} (async; window max ${fmtMs(Math.max(...r.results.map((x) => x.lossWindowMs)))})`;
  return `| ${spec.what} | ${r.results.length} | ${timing} | ${sum((x) => x.twoWriters.count)} | ${lost} | ${sum((x) => x.misrouted.patroni + x.misrouted.plain)} | ${sum((x) => x.serverStops)} |`;
}

export async function keeperFaultBench(
  majors: Array<number | undefined>,
  trials: number,
  faults: FaultName[],
): Promise<void> {
  for (const major of majors) {
    say(`== keeper: faults through HAProxy (PostgreSQL ${major ?? 'newest'}), ${trials} trials each ==`);
    say(
      'interval 500 ms x 3, witness unless noted; HAProxy: option httpchk GET /primary, inter 500ms fall 2 rise 1',
    );
    say(
      '| fault | trials | first write through HAProxy min / median / max | HAProxy marks the new primary up, median / max | two-writer moments | lost acknowledged writes | misrouted by HAProxy | self-stops |',
    );
    say('|---|---|---|---|---|---|---|---|');
    for (const fault of faults) {
      const results: TrialResult[] = [];
      for (let i = 0; i < trials; i++)
        results.push(await runKeeperTrial(fault, { dist: true, ...(major ? { major } : {}) }));
      say(row({ fault, results }));
    }
    say(`machine: load average ${loadavg()[0]?.toFixed(1)} (1 min) on ${availableParallelism()} cores`);
    if (faults.includes('postmaster-kill'))
      say('target: postmaster SIGKILL, median <= 500 ms and max <= 1.5 s');
    say(
      'client: one INSERT every 50 ms on a held connection; a connect attempt is given up after 100 ms (while a dead server is still marked up, HAProxy retries it with a turn-around delay of up to 1 s)',
    );
  }
}
