import { availableParallelism, loadavg } from 'node:os';
import { Sandbox, type SandboxNode } from '@pgfleet/sandbox';
import { bigTransaction } from './big-transaction.js';
import { crossMesh } from './cross-mesh.js';
import { drainNativeWorkload, drainPgfleetWorkload, type WorkloadDrain } from './drain.js';
import {
  applyTransactions,
  COMMIT_MODES,
  type CommitMode,
  dropParallelCommitObjects,
} from './parallel-commit.js';
import { fmtMs, fmtRate, summarize } from './stats.js';
import {
  type DrainWorkload,
  deleteWorkload,
  findPgbench,
  insertWorkload,
  largeTransactionWorkload,
  tpcbRacedWorkload,
  tpcbWorkload,
} from './workload.js';

type Say = (line?: string) => void;

/**
 * `npm run bench -- multimaster`. Every figure is pgfleet next to PostgreSQL's native
 * logical replication measured in the same run on the same two servers. Knobs:
 * BENCH_ONLY (comma-separated: insert1, insert20, tpcb, tpcb-raced, delete, large, parallel,
 * mesh, big; all by default), BENCH_REPEAT (runs of each drain, 3 by default),
 * BENCH_SCALE (multiplies every backlog, e.g. 0.05 for a smoke run), BENCH_MESH_SECONDS,
 * BENCH_MESH_RATES (comma-separated per-node rates tried for the highest sustained one),
 * BENCH_REPLICATOR_CPU_PROF (a directory: each mesh replicator process writes its
 * .cpuprofile there). Native drains first in odd runs, pgfleet in even ones.
 */
export async function multimasterBench(major: number | undefined, say: Say): Promise<void> {
  const scale = Number(process.env.BENCH_SCALE ?? 1);
  const n = (x: number) => Math.max(1, Math.round(x * scale));
  const sb = await Sandbox.create({ name: 'bench-mm', major });
  const verdict = (ok: boolean) => (ok ? 'OK' : 'BELOW TARGET');
  try {
    const [source, target, third] = await sb.startLogicalNodes(['src', 'dst', 'n3']);
    const only = (
      process.env.BENCH_ONLY ?? 'insert1,insert20,tpcb,tpcb-raced,delete,large,parallel,mesh,big'
    ).split(',');
    const workloads: DrainWorkload[] = [
      ...(only.includes('insert1') ? [insertWorkload(n(40_000), 1)] : []),
      ...(only.includes('insert20') ? [insertWorkload(n(8_000), 20)] : []),
      ...(only.includes('tpcb') ? [tpcbWorkload(findPgbench(sb.installation.binDir), n(20_000))] : []),
      ...(only.includes('tpcb-raced')
        ? [tpcbRacedWorkload(findPgbench(sb.installation.binDir), n(20_000))]
        : []),
      ...(only.includes('delete') ? [deleteWorkload(n(40_000), 1)] : []),
      ...(only.includes('large') ? [largeTransactionWorkload(n(200_000))] : []),
    ];
    const repeats = Math.max(1, Number(process.env.BENCH_REPEAT ?? 3));
    if (workloads.length > 0)
      say(
        `== multimaster: backlog drain, native logical replication vs pgfleet (PostgreSQL ${sb.major}), ${repeats} run(s) each ==`,
      );
    const rows: Array<{ name: string; runs: Array<{ native: WorkloadDrain; ours: WorkloadDrain }> }> = [];
    for (const w of workloads) {
      say(`- ${w.name}`);
      const runs: Array<{ native: WorkloadDrain; ours: WorkloadDrain }> = [];
      for (let i = 0; i < repeats; i++) {
        // Which system drains first alternates: a run after another on the same servers finds
        // them warmer (or fuller), and an order that never changes would pass that on as a ratio.
        const drain = async (system: typeof drainNativeWorkload) => {
          const d = await system(source!, target!, w);
          say(`  ${line(d)}`);
          return d;
        };
        const nativeFirst = i % 2 === 0;
        const first = await drain(nativeFirst ? drainNativeWorkload : drainPgfleetWorkload);
        const second = await drain(nativeFirst ? drainPgfleetWorkload : drainNativeWorkload);
        const [native, ours] = nativeFirst ? [first, second] : [second, first];
        const c = ours.cpu;
        const cpu = (v: number | null | undefined) => (v == null ? '?' : `${v.toFixed(2)} s`);
        say(
          `           CPU: replicator ${cpu(c?.replicator)} (${c ? ((100 * c.replicator) / ours.seconds).toFixed(0) : '?'}% of a core), apply backend ${cpu(c?.applyBackend)}, walsender ${cpu(c?.walsender)}; native: apply worker ${cpu(native.cpu?.applyBackend)}, walsender ${cpu(native.cpu?.walsender)}; conflicts recorded ${ours.conflicts}; load ${loadavg()[0]?.toFixed(1)}`,
        );
        say(`  ratio    pgfleet/native ${(native.seconds / ours.seconds).toFixed(2)}x`);
        runs.push({ native, ours });
      }
      const r = summarize(runs.map((x) => x.native.seconds / x.ours.seconds));
      say(
        `  ratio    min ${r.min.toFixed(2)}x  median ${r.median.toFixed(2)}x  max ${r.max.toFixed(2)}x  (target >= 1.00x) ${verdict(r.median >= 1)}`,
      );
      rows.push({ name: w.name, runs });
    }
    if (rows.length > 0) {
      say('');
      say(
        `| backlog (PostgreSQL ${sb.major}, ${repeats} runs) | native (median) | pgfleet (median) | pgfleet/native min / median / max | source = target |`,
      );
      say('|---|---|---|---|---|');
      for (const r of rows) {
        // A backlog of a few large transactions is told in rows a second (a transaction rate rounds to 0).
        const unit = (r.runs[0]?.native.transactions ?? 0) < 100 ? 'rows' : 'tx';
        const rate = (d: WorkloadDrain) => (unit === 'rows' ? d.changes : d.transactions) / d.seconds;
        const nat = summarize(r.runs.map((x) => rate(x.native))).median;
        const ours = summarize(r.runs.map((x) => rate(x.ours))).median;
        const ratio = summarize(r.runs.map((x) => x.native.seconds / x.ours.seconds));
        const same = (s: 'native' | 'ours') =>
          r.runs.every((x) => x[s].differing.length === 0) ? 'yes' : 'NO';
        say(
          `| ${r.name} | ${fmtRate(nat)} ${unit} | ${fmtRate(ours)} ${unit} | ${ratio.min.toFixed(2)}x / ${ratio.median.toFixed(2)}x / ${ratio.max.toFixed(2)}x | native ${same('native')}, pgfleet ${same('ours')} |`,
        );
      }
      say(
        `  machine  load average ${loadavg()
          .map((l) => l.toFixed(1))
          .join(' ')} on ${availableParallelism()} cores`,
      );
    }
    if (only.includes('parallel')) await parallelCommitBench(target!, n(40_000), repeats, sb.major, say);
    if (!only.includes('mesh') && !only.includes('big')) return;

    const nodes = [source!, target!, third!];
    if (only.includes('mesh')) await meshBench(nodes, say);
    if (only.includes('big')) await bigBench(source!, target!, n(1_000_000), sb.root, say);
  } finally {
    await sb.destroy();
  }
}

async function meshBench(nodes: SandboxNode[], say: Say): Promise<void> {
  const verdict = (ok: boolean) => (ok ? 'OK' : 'BELOW TARGET');
  {
    const seconds = Number(process.env.BENCH_MESH_SECONDS ?? 60);
    say('');
    say(
      `== multimaster: 3-node mesh, every node updates rows the others wrote, 1,000 tx/s per node for ${seconds} s ==`,
    );
    const fixed = await crossMesh(nodes, {
      ratePerNode: 1000,
      seconds,
      warmupSeconds: Math.min(5, seconds / 10),
    });
    say(`  achieved ${fixed.achievedTxPerSecond.map((r) => fmtRate(r)).join(', ')} tx per node`);
    say(
      `  lag      min ${fmtMs(fixed.lag.min)}  p50 ${fmtMs(fixed.lag.median)}  p99 ${fmtMs(fixed.lag.p99)}  max ${fmtMs(fixed.lag.max)}  (${fixed.lag.n.toLocaleString('en-US')} arrivals)`,
    );
    say(
      `  settled  ${fixed.settleMs === null ? 'NOT within the wait (the mesh fell behind; lag counts only what arrived)' : `${fmtMs(fixed.settleMs)} after the writers stopped`}; converged: ${fixed.converged ? 'yes' : 'NO'}; conflicts recorded ${fixed.conflicts}`,
    );
    say(
      `  replicator peak RSS ${fixed.peakRssMb.toFixed(0)} MB (target < 300 MB): ${verdict(fixed.peakRssMb < 300)}`,
    );
    say(`  p99 lag target < 250 ms: ${verdict(fixed.settleMs !== null && fixed.lag.p99 < 250)}`);

    const rates = (process.env.BENCH_MESH_RATES ?? '1000,2000,3000,4000,6000,8000').split(',').map(Number);
    say('- highest rate per node sustained with p99 lag < 1 s (10 s runs)');
    let best = 0;
    for (const rate of rates) {
      const r = await crossMesh(nodes, { ratePerNode: rate, seconds: 10, warmupSeconds: 2 });
      const achieved = Math.min(...r.achievedTxPerSecond);
      const ok = r.settleMs !== null && r.lag.p99 < 1000 && achieved >= 0.9 * rate && r.converged;
      say(
        `  ${fmtRate(rate)} per node: achieved ${fmtRate(achieved)}, p50 ${fmtMs(r.lag.median)}, p99 ${fmtMs(r.lag.p99)}, max ${fmtMs(r.lag.max)}${r.converged ? '' : ', NOT CONVERGED'} ${ok ? 'sustained' : 'not sustained'}`,
      );
      if (!ok) break;
      best = rate;
    }
    say(`  highest sustained: ${best ? fmtRate(best) : 'none of the rates tried'} per node`);
    say(`  machine  load average ${loadavg()[0]?.toFixed(1)} (1 min) on ${availableParallelism()} cores`);
  }
}

/**
 * One-row transactions over one apply session and over two (parallel-commit.ts), on the
 * target alone: what parallel apply could gain here before any dispatching is paid for.
 */
async function parallelCommitBench(
  node: SandboxNode,
  transactions: number,
  repeats: number,
  major: number,
  say: Say,
): Promise<void> {
  say('');
  say(
    `== multimaster: ${transactions.toLocaleString('en-US')} one-row update transactions (witness, commit each) over one apply session and over two, one server, nothing else running (PostgreSQL ${major}), ${repeats} run(s) each ==`,
  );
  const seconds = new Map<CommitMode, number[]>(COMMIT_MODES.map((m) => [m, []]));
  try {
    for (let i = 0; i < repeats; i++) {
      // Each round in another order, so no mode always runs on the warmest server.
      const order = COMMIT_MODES.map((_, k) => COMMIT_MODES[(k + i) % COMMIT_MODES.length] as CommitMode);
      for (const mode of order) seconds.get(mode)?.push(await applyTransactions(node, transactions, mode));
    }
  } finally {
    await dropParallelCommitObjects(node);
  }
  const serial = summarize(seconds.get('serial') ?? []);
  const what: Record<CommitMode, string> = {
    serial: 'one session, in order',
    ordered: 'two sessions, source commit order',
    unordered: 'two sessions, any commit order',
    ledger: 'same, a ledger row each (exactly once)',
  };
  for (const mode of COMMIT_MODES) {
    const s = summarize(seconds.get(mode) ?? []);
    const ratio = summarize((seconds.get(mode) ?? []).map((x) => serial.median / x));
    say(
      `  ${what[mode].padEnd(39)} ${s.min.toFixed(2)} / ${s.median.toFixed(2)} / ${s.max.toFixed(2)} s  ${fmtRate(transactions / s.median)} tx  vs one session ${ratio.min.toFixed(2)}x / ${ratio.median.toFixed(2)}x / ${ratio.max.toFixed(2)}x`,
    );
  }
}

async function bigBench(source: SandboxNode, target: SandboxNode, bigRows: number, root: string, say: Say) {
  const verdict = (ok: boolean) => (ok ? 'OK' : 'BELOW TARGET');
  {
    say(
      `== multimaster: replicator process draining one ${bigRows.toLocaleString('en-US')}-row transaction ==`,
    );
    const big = await bigTransaction(source, target, bigRows, root);
    say(
      `  drain    ${big.seconds.toFixed(2)} s  ${fmtRate(big.rows / big.seconds)} rows; exit code after SIGTERM ${big.exitCode}`,
    );
    say(
      `  peak RSS ${big.peakRssMb.toFixed(0)} MB (VmHWM; sampled max ${big.sampledPeakRssMb.toFixed(0)} MB)  target < 300 MB: ${verdict(big.peakRssMb < 300)}`,
    );
  }
}

function line(r: WorkloadDrain): string {
  return `${r.system.padEnd(8)} ${r.seconds.toFixed(2)} s  ${fmtRate(r.transactions / r.seconds)} tx  ${fmtRate(r.changes / r.seconds)} changes${r.differing.length ? `  DIFFERS from source: ${r.differing.join(', ')}` : ''}`;
}
