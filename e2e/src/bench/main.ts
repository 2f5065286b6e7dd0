/**
 * `npm run bench [-- keeper|multimaster|mesh-failover]`: benchmark figures, printed. Targets live here, not
 * in timed unit tests. Every figure comes from real servers started by the sandbox.
 */
import { join } from 'node:path';
import { keeperBench } from './keeper-bench.js';
import { meshFailoverBench } from './mesh-failover.js';
import { multimasterBench } from './mm-bench.js';

const say = (line = '') => process.stdout.write(`${line}\n`);

async function main(): Promise<void> {
  const parts = process.argv.slice(2).filter((a) => !a.startsWith('-'));
  const want = (p: string) => parts.length === 0 || parts.includes(p);
  const major = process.env.PGFLEET_PG_VERSION ? Number(process.env.PGFLEET_PG_VERSION) : undefined;
  if (want('keeper'))
    await keeperBench(join(import.meta.dirname, '..', '..', '..'), Number(process.env.BENCH_TRIALS ?? 10));
  if (want('multimaster')) await multimasterBench(major, say);
  if (want('mesh-failover')) await meshFailoverBench(major, say);
}

main().catch((err: Error) => {
  process.stderr.write(`bench failed: ${err.stack ?? err.message}\n`);
  process.exitCode = 1;
});
