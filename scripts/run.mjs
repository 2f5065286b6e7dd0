#!/usr/bin/env node
// Entry point behind every root script (`npm test`, `pnpm demo`, ...). It works on a fresh
// clone with nothing but Node.js 20 + npm: it fetches pnpm if needed, installs the workspace
// from the lockfile, builds, then runs the job. Only Node built-ins are used here.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const pnpmVersion = pkg.packageManager.split('@')[1];
const pnpmMajor = pnpmVersion.split('.')[0];

function run(cmd, args, opts = {}) {
  const res = spawnSync(cmd, args, { stdio: 'inherit', cwd: root, ...opts });
  if (res.error) throw res.error;
  return res.status ?? 1;
}

function mustRun(cmd, args, opts) {
  const status = run(cmd, args, opts);
  if (status !== 0) {
    console.error(`pgfleet: '${cmd} ${args.join(' ')}' failed with exit code ${status}`);
    process.exit(status);
  }
}

/**
 * pnpm from PATH when it is the right major, else a local copy installed once with npm.
 * A local copy's bin directory is put at the front of PATH for everything we start: turbo
 * (and any tool that shells out to the package manager) looks pnpm up on PATH, not here.
 */
function findPnpm() {
  const onPath = spawnSync('pnpm', ['--version'], { encoding: 'utf8' });
  if (onPath.status === 0 && onPath.stdout.trim().split('.')[0] === pnpmMajor) return 'pnpm';
  const localBin = join(root, '.cache', 'pnpm', 'node_modules', '.bin');
  const local = join(localBin, 'pnpm');
  process.env.PATH = [localBin, process.env.PATH].filter(Boolean).join(delimiter);
  if (!existsSync(local)) {
    console.log(`pgfleet: installing pnpm ${pnpmVersion} into .cache/pnpm (one time)`);
    mkdirSync(join(root, '.cache', 'pnpm'), { recursive: true });
    mustRun('npm', [
      'install',
      '--prefix',
      join(root, '.cache', 'pnpm'),
      '--no-save',
      '--no-package-lock',
      '--loglevel=error',
      `pnpm@${pnpmVersion}`,
    ]);
  }
  return local;
}

/** Installs dependencies when node_modules is missing or older than the lockfile. */
function ensureInstalled(pnpm) {
  const stamp = join(root, 'node_modules', '.pgfleet-installed');
  const lock = join(root, 'pnpm-lock.yaml');
  const fresh = existsSync(stamp) && existsSync(lock) && statSync(stamp).mtimeMs >= statSync(lock).mtimeMs;
  if (fresh) return;
  const args = existsSync(lock) ? ['install', '--frozen-lockfile'] : ['install'];
  mustRun(pnpm, args, { env: { ...process.env, npm_config_yes: 'true' } });
  writeFileSync(stamp, new Date().toISOString());
}

const job = process.argv[2] ?? 'test';
const rest = process.argv.slice(3);
const pnpm = findPnpm();
ensureInstalled(pnpm);
if (job === 'bootstrap') process.exit(0);

process.env.TURBO_TELEMETRY_DISABLED = '1';
const exec = (bin, args) => mustRun(pnpm, ['exec', bin, ...args]);
const turboBuild = ['exec', 'turbo', 'run', 'build', '--output-logs=errors-only'];
/** Builds every package; before a demo, test or bench run quietly unless it fails. */
function build({ quiet = true } = {}) {
  if (!quiet) return mustRun(pnpm, turboBuild);
  const res = spawnSync(pnpm, turboBuild, { cwd: root, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (res.error) throw res.error;
  if (res.status !== 0) {
    process.stdout.write(res.stdout ?? '');
    process.stderr.write(res.stderr ?? '');
    console.error(`pgfleet: the build failed (exit code ${res.status})`);
    process.exit(res.status ?? 1);
  }
}

switch (job) {
  case 'build':
    build({ quiet: false });
    break;
  case 'lint':
    exec('biome', ['ci', '.']);
    break;
  case 'typecheck':
    build({ quiet: false });
    exec('turbo', ['run', 'typecheck', '--output-logs=errors-only']);
    break;
  case 'test':
  case 'test:unit':
  case 'test:etcd':
  case 'test:pg':
  case 'test:e2e':
  case 'test:containers':
    build();
    mustRun(process.execPath, [join(root, 'scripts', 'test.mjs'), job, ...rest]);
    break;
  case 'demo':
    build();
    exec('tsx', [join(root, 'e2e', 'src', 'demo', 'main.ts'), ...rest]);
    break;
  case 'bench':
    build();
    exec('tsx', [join(root, 'e2e', 'src', 'bench', 'main.ts'), ...rest]);
    break;
  default:
    console.error(
      `pgfleet: unknown job '${job}' (try: test, test:containers, demo, bench, build, lint, typecheck)`,
    );
    process.exit(2);
}
