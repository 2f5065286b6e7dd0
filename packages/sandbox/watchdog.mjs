#!/usr/bin/env node
// Sandbox watchdog: `node watchdog.mjs <ownerPid> <root>`. Runs detached. When the owner
// process is gone (killed without cleaning up), it kills the process groups listed in
// <root>/pids and removes <root>. It exits quietly once <root> no longer exists.
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const [ownerArg, root] = process.argv.slice(2);
const owner = Number(ownerArg);

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === 'EPERM';
  }
}

// A postmaster's children lead their own process groups (setsid in InitPostmasterChild).
function children(pid) {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    const out = [];
    for (const e of readdirSync('/proc'))
      try {
        const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
        if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) out.push(Number(e));
      } catch {}
    return out;
  }
}

function cleanup() {
  let pids = [];
  try {
    pids = readFileSync(join(root, 'pids'), 'utf8').split('\n').filter(Boolean).map(Number);
  } catch {}
  for (const pgid of pids) {
    for (const child of children(pgid))
      for (const sig of ['SIGCONT', 'SIGKILL']) {
        try {
          process.kill(child, sig);
        } catch {}
      }
    for (const sig of ['SIGCONT', 'SIGKILL']) {
      try {
        process.kill(-pgid, sig);
      } catch {}
    }
  }
  // Give the killed servers a moment to release their files before removing them.
  setTimeout(() => {
    rmSync(root, { recursive: true, force: true });
    process.exit(0);
  }, 300);
}

const timer = setInterval(() => {
  if (!existsSync(root)) process.exit(0);
  if (!alive(owner)) {
    clearInterval(timer);
    cleanup();
  }
}, 500);
