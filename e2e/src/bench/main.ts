/**
 * `npm run bench [-- keeper|multimaster]`: benchmark figures, printed. Targets live here, not
 * in timed unit tests. Every figure comes from real servers started by the sandbox.
 */
import { join } from 'node:path';
import { Sandbox } from '@pgfleet/sandbox';
import { keeperBench } from './keeper-bench.js';
import { type DrainResult, drainNative } from './native-logical.js';
import { drainPgfleet } from './pgfleet-drain.js';
import { fmtRate } from './stats.js';

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
  try {
    const [source, target] = await sb.startLogicalNodes(['src', 'dst']);
    for (const shape of SHAPES) {
      say(`- ${shape.name} (PostgreSQL ${sb.major})`);
      const native = await drainNative(source!, target!, shape);
      printDrain(native);
      const ours = await drainPgfleet(source!, target!, shape);
      printDrain(ours);
      const ratio = native.seconds / ours.seconds;
      say(
        `  ratio    pgfleet/native ${ratio.toFixed(2)}x  (target >= 1.00x) ${ratio >= 1 ? 'OK' : 'BELOW TARGET'}`,
      );
    }
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
