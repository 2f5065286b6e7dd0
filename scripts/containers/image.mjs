// The PostgreSQL image of the containers phase, built from Debian packages only: a
// `debootstrap --variant=minbase` root imported as the base, then e2e/image/Containerfile.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { imageExists, log, mustSh, podman, sh } from './shell.mjs';

const imageDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'e2e', 'image');
/** PostgreSQL major of the image we build (Debian 12 ships 15). */
export const LOCAL_PG_MAJOR = 15;
const DEBIAN_SUITE = 'bookworm';
const MIRROR = process.env.PGFLEET_DEBIAN_MIRROR ?? 'http://deb.debian.org/debian';

function unmountBelow(dir) {
  const mounts = readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[1]?.replace(/\\040/g, ' '))
    .filter((m) => m && (m === dir || m.startsWith(`${dir}/`)))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) sh('umount', ['-l', m]);
}

function removeRootfs(dir) {
  if (!existsSync(dir)) return;
  unmountBelow(dir);
  rmSync(dir, { recursive: true, force: true });
}

const hash = (...parts) => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p).update('\0');
  return h.digest('hex').slice(0, 12);
};

/**
 * The PostgreSQL image, built unless an image with the same inputs is cached: a
 * `debootstrap --variant=minbase` root imported as the base, then e2e/image/Containerfile.
 * Tags carry a hash of their inputs, so a changed Containerfile or entrypoint rebuilds.
 */
export function ensureImage(confEnv, stateDir) {
  const t0 = Date.now();
  const baseTag = `localhost/pgfleet-debian:${DEBIAN_SUITE}-minbase-${hash('debootstrap v1', DEBIAN_SUITE, 'minbase', MIRROR)}`;
  const pgTag = `localhost/pgfleet-postgres:${LOCAL_PG_MAJOR}-${hash(
    baseTag,
    String(LOCAL_PG_MAJOR),
    readFileSync(join(imageDir, 'Containerfile')),
    readFileSync(join(imageDir, 'docker-entrypoint.sh')),
  )}`;
  if (imageExists(confEnv, pgTag)) {
    log(`image ${pgTag} cached (checked in ${Date.now() - t0} ms)`);
    return { tag: pgTag, built: false, ms: Date.now() - t0 };
  }
  if (!imageExists(confEnv, baseTag)) {
    const tb = Date.now();
    const rootfs = join(stateDir, 'rootfs');
    removeRootfs(rootfs);
    log(`debootstrap --variant=minbase ${DEBIAN_SUITE} (${MIRROR})`);
    try {
      mustSh('debootstrap', ['--variant=minbase', DEBIAN_SUITE, rootfs, MIRROR]);
      unmountBelow(rootfs);
      // The .debs and package lists are only download leftovers: 80 MB the image does not need.
      rmSync(join(rootfs, 'var/cache/apt/archives'), { recursive: true, force: true });
      rmSync(join(rootfs, 'var/lib/apt/lists'), { recursive: true, force: true });
      mkdirSync(join(rootfs, 'var/cache/apt/archives/partial'), { recursive: true });
      mkdirSync(join(rootfs, 'var/lib/apt/lists/partial'), { recursive: true });
      mustSh('sh', ['-c', `tar -C "${rootfs}" -c . | podman --log-level=error import - "${baseTag}"`], {
        env: { ...process.env, ...confEnv },
      });
    } finally {
      removeRootfs(rootfs);
    }
    log(`base image ${baseTag} built in ${((Date.now() - tb) / 1000).toFixed(1)} s`);
  }
  const tp = Date.now();
  // --network=host: apt inside the build reaches the Debian mirror as the host does, and no
  // container network (nor its ip_forward / iptables changes) exists during the build.
  podman(confEnv, [
    'build',
    '--network=host',
    '--pull=never',
    '--layers=false',
    '--build-arg',
    `BASE=${baseTag}`,
    '--build-arg',
    `PG_MAJOR=${LOCAL_PG_MAJOR}`,
    '-t',
    pgTag,
    '-f',
    join(imageDir, 'Containerfile'),
    imageDir,
  ]);
  log(`image ${pgTag} built in ${((Date.now() - tp) / 1000).toFixed(1)} s`);
  // Older builds of our images are only disk now.
  const old = podman(confEnv, ['images', '--format', '{{.Repository}}:{{.Tag}}'])
    .split('\n')
    .filter((t) => /^localhost\/pgfleet-(postgres|debian):/.test(t) && t !== pgTag && t !== baseTag);
  if (old.length > 0) sh('podman', ['rmi', '-f', ...old], { env: { ...process.env, ...confEnv } });
  sh('podman', ['image', 'prune', '-f'], { env: { ...process.env, ...confEnv } });
  return { tag: pgTag, built: true, ms: Date.now() - t0 };
}
