#!/usr/bin/env node
// A private container runtime for the e2e containers phase (issue 12): Debian's podman serving
// the Docker API on a socket of its own, with a PostgreSQL image built here from Debian
// packages (no registry is reachable from this machine kind, and none is ever pulled from).
//
//   node scripts/containers.mjs install   installs the Debian packages (root, idempotent)
//   node scripts/containers.mjs image     builds the image unless cached, prints its tag
//
// scripts/test.mjs imports startRuntime() for the `containers` phase. Only Node built-ins here;
// the image is built by containers/image.mjs, the host's network state kept by
// containers/host-network.mjs.
//
// What this machine kind needs, found by hand (see issue 12):
// - runc, not crun: crun 1.8 refuses this cgroup v1/v2 hybrid host;
// - rlimits no higher than our own hard limits: without CAP_SYS_RESOURCE runc cannot raise them;
// - no systemd: no healthchecks, no socket activation, so the service is started by us;
// - netavark switches net.ipv4.ip_forward on and adds NETAVARK* iptables chains: we put both
//   back as they were once everything we started is gone.
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { networkDrift, restoreNetwork, snapshotNetwork } from './containers/host-network.mjs';
import { ensureImage, LOCAL_PG_MAJOR } from './containers/image.mjs';
import { log, mustSh, sh } from './containers/shell.mjs';

// podman's helpers (netavark) and our network snapshot run iptables from the sbin directories,
// which a user's PATH may lack.
process.env.PATH = withSbin(process.env.PATH);

/** Debian packages the local runtime needs (podman's "crun | runc" is satisfied by runc). */
export const PACKAGES = ['podman', 'runc', 'netavark', 'aardvark-dns', 'iptables', 'debootstrap'];
const STATE_DIR = process.env.PGFLEET_CONTAINERS_STATE ?? '/var/lib/pgfleet-e2e/containers';
const RUN_DIR = process.env.PGFLEET_CONTAINERS_RUN ?? '/run/pgfleet-e2e-containers';
const LOCK_WAIT_MS = 15 * 60_000;

export function missingPackages() {
  return PACKAGES.filter((p) => {
    // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own format syntax
    const res = sh('dpkg-query', ['-W', '-f=${Status}', p]);
    return res.status !== 0 || !res.stdout.includes('install ok installed');
  });
}

/** apt-get installs what is missing; false (with the reason logged) when it cannot. */
export function installPackages() {
  const missing = missingPackages();
  if (missing.length === 0) return true;
  if (process.getuid?.() !== 0) {
    log(`cannot install ${missing.join(', ')}: not root`);
    return false;
  }
  log(`installing Debian packages: ${missing.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  mustSh('apt-get', ['update', '-qq'], { env });
  mustSh('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...PACKAGES], { env });
  return true;
}

/** Why the local runtime cannot be had here, or undefined when it can. */
export function localRuntimeUnavailable() {
  if (process.platform !== 'linux') return 'the local runtime (podman) needs Linux';
  if (process.getuid?.() !== 0) return 'the local runtime runs rootful podman and needs root';
  const missing = missingPackages();
  if (missing.length > 0)
    return `Debian packages missing: ${missing.join(', ')} (npm run test:containers or .ci/run installs them)`;
  return undefined;
}

function hostHardLimit(flag, cap) {
  const v = sh('sh', ['-c', `ulimit -H${flag}`]).stdout?.trim();
  const n = v === 'unlimited' ? cap : Number(v);
  return Number.isFinite(n) && n > 0 ? Math.min(n, cap) : cap;
}

/** containers.conf + storage.conf + registries.conf of our own, so nothing global is used. */
function writeConfig() {
  mkdirSync(RUN_DIR, { recursive: true });
  mkdirSync(STATE_DIR, { recursive: true });
  const nofile = hostHardLimit('n', 65536);
  // podman's nproc default for root (4194304) is above what runc may set here.
  const nproc = hostHardLimit('u', 8192);
  const conf = join(RUN_DIR, 'containers.conf');
  writeFileSync(
    conf,
    `[containers]
default_ulimits = ["nofile=${nofile}:${nofile}", "nproc=${nproc}:${nproc}"]
log_driver = "k8s-file"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "${RUN_DIR}/events.log"
# conmon lingers exit_command_delay seconds after each exec (300 by default): a pair of idle
# processes per exec would pile up during a run.
exit_command_delay = 5
tmp_dir = "${RUN_DIR}/libpod"

[network]
network_backend = "netavark"
network_config_dir = "${STATE_DIR}/networks"
`,
  );
  const storage = join(RUN_DIR, 'storage.conf');
  writeFileSync(
    storage,
    `[storage]
driver = "overlay"
graphroot = "${STATE_DIR}/storage"
runroot = "${RUN_DIR}/storage"
`,
  );
  // No registry to search: an image that is not here fails at once instead of being pulled.
  const registries = join(RUN_DIR, 'registries.conf');
  writeFileSync(registries, 'unqualified-search-registries = []\nshort-name-mode = "disabled"\n');
  return {
    CONTAINERS_CONF: conf,
    CONTAINERS_STORAGE_CONF: storage,
    CONTAINERS_REGISTRIES_CONF: registries,
  };
}

// --- one run at a time per machine ----------------------------------------------------------

/**
 * The storage, networks and iptables chains are per machine, and restoring the network state
 * under another run's containers would cut them off: runs take turns.
 */
async function acquireLock() {
  mkdirSync(RUN_DIR, { recursive: true });
  const lock = join(RUN_DIR, 'lock');
  const deadline = Date.now() + LOCK_WAIT_MS;
  let told = false;
  for (;;) {
    try {
      const fd = openSync(lock, 'wx');
      writeFileSync(fd, String(process.pid));
      closeSync(fd);
      return () => rmSync(lock, { force: true });
    } catch (err) {
      if (err.code !== 'EEXIST') throw err;
      const holder = Number(readFileSync(lock, 'utf8').trim());
      if (!holder || !isAlive(holder)) {
        rmSync(lock, { force: true });
        continue;
      }
      if (Date.now() > deadline)
        throw new Error(`the container runtime is busy: pid ${holder} holds ${lock}`);
      if (!told) log(`waiting for pid ${holder} (another run) to release ${lock}`);
      told = true;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

function isAlive(pid) {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return err.code === 'EPERM';
  }
  // Our own child exits into a zombie that Node reaps only when the event loop turns, which a
  // synchronous stop() never lets it do.
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

function ping(socket) {
  return new Promise((resolve) => {
    const req = request({ socketPath: socket, path: '/_ping', timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

/** Removes every container, volume and network of our private storage (ours alone). */
function removeAll(confEnv) {
  const env = { ...process.env, ...confEnv };
  sh('podman', ['--log-level=error', 'rm', '--all', '--force', '--volumes', '--time', '0'], { env });
  sh('podman', ['--log-level=error', 'network', 'prune', '--force'], { env });
  sh('podman', ['--log-level=error', 'volume', 'prune', '--force'], { env });
}

/**
 * Starts the Docker-API service on a private socket and returns the environment for the
 * tests (DOCKER_HOST, testcontainers settings, image) and a synchronous stop(), which
 * returns what it could not put back as it was (empty when the host is as we found it).
 */
export async function startRuntime() {
  const release = await acquireLock();
  let confEnv;
  let service;
  let network;
  let stopped;
  const stop = () => {
    if (stopped) return stopped;
    if (confEnv) removeAll(confEnv);
    if (service && service.exitCode === null && service.signalCode === null) {
      try {
        process.kill(-service.pid, 'SIGTERM');
      } catch {}
      const until = Date.now() + 10_000;
      while (isAlive(service.pid) && Date.now() < until) sh('sleep', ['0.1']);
      if (isAlive(service.pid)) {
        try {
          process.kill(-service.pid, 'SIGKILL');
        } catch {}
      }
    }
    stopped = [];
    if (network) {
      restoreNetwork(network);
      stopped = networkDrift(network);
    }
    rmSync(join(RUN_DIR, 'podman.sock'), { force: true });
    release();
    return stopped;
  };
  try {
    confEnv = writeConfig();
    network = snapshotNetwork();
    removeAll(confEnv); // leftovers of a run that died
    const image = ensureImage(confEnv, STATE_DIR);
    const socket = join(RUN_DIR, 'podman.sock');
    rmSync(socket, { force: true });
    const logFd = openSync(join(RUN_DIR, 'service.log'), 'w');
    service = spawn('podman', ['--log-level=error', 'system', 'service', '--time=0', `unix://${socket}`], {
      detached: true,
      stdio: ['ignore', logFd, logFd],
      env: { ...process.env, ...confEnv },
    });
    closeSync(logFd);
    service.unref();
    const deadline = Date.now() + 30_000;
    while (!(await ping(socket))) {
      if (service.exitCode !== null || Date.now() > deadline) {
        throw new Error(
          `podman system service did not answer on ${socket}: ${readFileSync(join(RUN_DIR, 'service.log'), 'utf8').slice(-2000)}`,
        );
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    return {
      image,
      env: {
        ...confEnv,
        DOCKER_HOST: `unix://${socket}`,
        // Ryuk would be pulled from a registry; we remove what we started ourselves.
        TESTCONTAINERS_RYUK_DISABLED: 'true',
        // Without it testcontainers looks for the host in a helper container (another pull).
        TESTCONTAINERS_HOST_OVERRIDE: '127.0.0.1',
        E2E_PROVIDER: 'containers',
        E2E_IMAGE: image.tag,
        PGFLEET_PG_VERSION: String(LOCAL_PG_MAJOR),
      },
      stop,
    };
  } catch (err) {
    stop();
    throw err;
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const cmd = process.argv[2];
  if (cmd === 'install') {
    process.exit(installPackages() ? 0 : 1);
  } else if (cmd === 'image') {
    const why = localRuntimeUnavailable();
    if (why) {
      console.error(`containers: ${why}`);
      process.exit(1);
    }
    const release = await acquireLock();
    try {
      console.log(ensureImage(writeConfig(), STATE_DIR).tag);
    } finally {
      release();
    }
  } else {
    console.error('usage: node scripts/containers.mjs install|image');
    process.exit(2);
  }
}

/** PATH with /usr/sbin and /sbin appended when missing (podman's helpers run iptables from there). */
function withSbin(path = '') {
  const dirs = path.split(':').filter(Boolean);
  for (const d of ['/usr/sbin', '/sbin']) if (!dirs.includes(d)) dirs.push(d);
  return dirs.join(':');
}
