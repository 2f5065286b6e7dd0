// Running commands for scripts/containers.mjs and its parts (Node built-ins only).
import { spawnSync } from 'node:child_process';

export const log = (line) => console.log(`containers: ${line}`);

export function sh(cmd, args, opts = {}) {
  return spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, ...opts });
}

export function mustSh(cmd, args, opts = {}) {
  const res = sh(cmd, args, opts);
  if (res.error) throw res.error;
  if (res.status !== 0) {
    const out = `${res.stdout ?? ''}${res.stderr ?? ''}`.trim().split('\n').slice(-15).join('\n');
    throw new Error(`'${cmd} ${args.join(' ')}' failed with exit code ${res.status}:\n${out}`);
  }
  return res.stdout ?? '';
}

export function podman(confEnv, args, opts = {}) {
  return mustSh('podman', ['--log-level=error', ...args], { ...opts, env: { ...process.env, ...confEnv } });
}

export function imageExists(confEnv, tag) {
  return sh('podman', ['image', 'exists', tag], { env: { ...process.env, ...confEnv } }).status === 0;
}

/**
 * Lazily unmounts whatever a debootstrap that died left mounted in its target (proc, sys, a
 * bound /dev), deepest first: deleting the target with those mounted would reach the host's.
 */
