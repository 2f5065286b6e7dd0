import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { EtcdNotFoundError } from './errors.js';

export interface EtcdBinary {
  path: string;
  /** e.g. '3.4.23'. */
  version: string;
}

/**
 * Finds an etcd server: an explicit path, else `etcd` on PATH, else Debian's /usr/bin/etcd.
 * The keeper talks to etcd's v3 JSON gateway under /v3, which needs etcd 3.4 or newer.
 */
export function findEtcd(opts: { binary?: string; path?: string } = {}): EtcdBinary {
  const searched: string[] = [];
  const candidates = opts.binary
    ? [opts.binary]
    : [
        ...(opts.path ?? process.env.PATH ?? '')
          .split(delimiter)
          .filter(Boolean)
          .map((d) => join(d, 'etcd')),
        '/usr/bin/etcd',
      ];
  for (const path of candidates) {
    searched.push(path);
    if (!existsSync(path)) continue;
    let out: string;
    try {
      out = execFileSync(path, ['--version'], { encoding: 'utf8', timeout: 10_000 });
    } catch {
      continue;
    }
    const m = /etcd Version:\s*(\d+)\.(\d+)\.(\d+)/.exec(out);
    if (!m) continue;
    if (Number(m[1]) < 3 || (Number(m[1]) === 3 && Number(m[2]) < 4)) {
      throw new EtcdNotFoundError(
        `${path} is etcd ${m[1]}.${m[2]}.${m[3]}; the sandbox needs etcd 3.4 or newer`,
        {
          path,
        },
      );
    }
    return { path, version: `${m[1]}.${m[2]}.${m[3]}` };
  }
  throw new EtcdNotFoundError(
    `no etcd server found (looked at ${searched.join(', ')}); install Debian's etcd-server package ` +
      `(apt-get install etcd-server) or pass the binary's path`,
    { searched },
  );
}
