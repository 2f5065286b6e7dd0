/**
 * `npm run bench [-- keeper|multimaster]`: benchmark figures, printed. Targets live here, not
 * in timed unit tests. Every figure comes from real servers started by the sandbox.
 */
import { availableParallelism, loadavg } from 'node:os';
import { join } from 'node:path';
import { Sandbox } from '@pgfleet/sandbox';
import { bigTransaction } from './big-transaction.js';
import { keeperBench } from './keeper-bench.js';
import { meshLag } from './mesh-lag.js';
import { type DrainResult, drainNative } from './native-logical.js';
import { drainPgfleet } from './pgfleet-drain.js';
import { fmtMs, fmtRate } from './stats.js';

const say = (line = '') => process.stdout.write(`${line}\n`);

const SHAPES = [
  { name: '40,000 x 1-row tx', transactions: 40_000, rowsPerTransaction: 1 },
  { name: '8,000 x 20-row tx', transactions: 8_000, rowsPerTransaction: 20 },
];

function printDrain(r: DrainResult): void {
  say(
    `  ${r.label.padEnd(8)} ${r.seconds.toFixed(2)} s  ${fmtRate(r.transactions / r.seconds)} tx  ${fmtRate(r.rows / r.seconds)} rows`,
  );
}

async function multimasterBench(major: number | undefined): Promise<void> {
  say('== multimaster: backlog drain, native logical replication vs pgfleet ==');
  const sb = await Sandbox.create({ name: 'bench-mm', major });
  const verdict = (ok: boolean) => (ok ? 'OK' : 'BELOW TARGET');
  try {
    const [source, target] = await sb.startLogicalNodes(['src', 'dst']);
    for (const shape of SHAPES) {
      say(`- ${shape.name} (PostgreSQL ${sb.major})`);
      const native = await drainNative(source!, target!, shape);
      printDrain(native);
      const ours = await drainPgfleet(source!, target!, shape);
      printDrain(ours);
      const cpu = (v: number | null) => (v === null ? '?' : `${v.toFixed(2)} s`);
      say(
        `           CPU: replicator ${cpu(ours.replicatorCpuSeconds)} (${((100 * ours.replicatorCpuSeconds) / ours.seconds).toFixed(0)}% of a core), apply backend ${cpu(ours.applyBackendCpuSeconds)}, walsender ${cpu(ours.walsenderCpuSeconds)}`,
      );
      const ratio = native.seconds / ours.seconds;
      say(`  ratio    pgfleet/native ${ratio.toFixed(2)}x  (target >= 1.00x) ${verdict(ratio >= 1)}`);
    }

    const seconds = Number(process.env.BENCH_MESH_SECONDS ?? 60);
    const rate = 1000;
    say(`== multimaster: steady-state lag, 3-node mesh, ${rate} tx/s per node for ${seconds} s ==`);
    const third = await sb.startNode('n3', { logical: true });
    const mesh = await meshLag([source!, target!, third], {
      seconds,
      ratePerNode: rate,
      warmupSeconds: Math.min(5, seconds / 10),
    });
    await third.stop('fast');
    say(`  achieved ${mesh.achievedTxPerSecond.map((r) => fmtRate(r)).join(', ')} tx per node`);
    say(
      `  lag      p50 ${fmtMs(mesh.lag.median)}  p99 ${fmtMs(mesh.lag.p99)}  max ${fmtMs(mesh.lag.max)}  (${mesh.lag.n.toLocaleString('en-US')} row arrivals; worst target ${mesh.worstTargetP99.target} p99 ${fmtMs(mesh.worstTargetP99.p99)})`,
    );
    say(`  settled  ${fmtMs(mesh.settleMs)} after the writers stopped`);
    say(`  machine  load average ${loadavg()[0]?.toFixed(1)} (1 min) on ${availableParallelism()} cores`);
    say(`  p99 lag  target < 250 ms: ${verdict(mesh.lag.p99 < 250)}`);

    const bigRows = 1_000_000;
    say(
      `== multimaster: replicator process draining one ${bigRows.toLocaleString('en-US')}-row transaction ==`,
    );
    const big = await bigTransaction(source!, target!, bigRows, sb.root);
    say(
      `  drain    ${big.seconds.toFixed(2)} s  ${fmtRate(big.rows / big.seconds)} rows; exit code after SIGTERM ${big.exitCode}`,
    );
    say(
      `  peak RSS ${big.peakRssMb.toFixed(0)} MB (VmHWM; sampled max ${big.sampledPeakRssMb.toFixed(0)} MB)  target < 300 MB: ${verdict(big.peakRssMb < 300)}`,
    );
  } finally {
    await sb.destroy();
  }
}

async function main(): Promise<void> {
  const parts = process.argv.slice(2).filter((a) => !a.startsWith('-'));
  const want = (p: string) => parts.length === 0 || parts.includes(p);
  const major = process.env.PGFLEET_PG_VERSION ? Number(process.env.PGFLEET_PG_VERSION) : undefined;
  if (want('keeper'))
    await keeperBench(join(import.meta.dirname, '..', '..', '..'), Number(process.env.BENCH_TRIALS ?? 10));
  if (want('multimaster')) await multimasterBench(major);
}

main().catch((err: Error) => {
  process.stderr.write(`bench failed: ${err.stack ?? err.message}\n`);
  process.exitCode = 1;
});
