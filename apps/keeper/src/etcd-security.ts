import { readFileSync } from 'node:fs';
import { ConfigError } from '@pgfleet/connection';
import type { EtcdSettings } from './cluster-settings.js';
import type { GatewaySecurity } from './dcs/index.js';

/**
 * The etcd client's credentials from the configuration: the user and password as given, the
 * PEM files read once, here, at the edge; an unreadable file is a ConfigError naming its key.
 */
export function etcdSecurity(etcd: EtcdSettings): GatewaySecurity {
  const read = (key: 'cacert' | 'cert' | 'key'): string | undefined => {
    const path = etcd[key];
    if (path === undefined) return undefined;
    try {
      return readFileSync(path, 'utf8');
    } catch (err) {
      throw new ConfigError(
        `invalid keeper configuration: "dcs.etcd.${key}": cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
        { key: `dcs.etcd.${key}`, keys: [`dcs.etcd.${key}`] },
      );
    }
  };
  const ca = read('cacert');
  const cert = read('cert');
  const key = read('key');
  return {
    ...(ca ? { ca } : {}),
    ...(cert ? { cert } : {}),
    ...(key ? { key } : {}),
    ...(etcd.username !== undefined ? { username: etcd.username } : {}),
    ...(etcd.password !== undefined ? { password: etcd.password } : {}),
  };
}
