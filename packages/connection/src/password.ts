import { createRequire } from 'node:module';
import type { HostTarget } from './client-config.js';
import type { ConnParams } from './conninfo.js';

/** The `pgpass` module (CommonJS, no types): calls back with the password or undefined. */
type Pgpass = (
  connInfo: { host: string; port: number; database: string; user: string },
  cb: (password: string | undefined) => void,
) => void;
const pgpass = createRequire(import.meta.url)('pgpass') as Pgpass;

/**
 * libpq's password sources after the conninfo's own `password`: the PGPASSWORD environment
 * variable, then the password file (PGPASSFILE or ~/.pgpass, ignored unless it is private,
 * as libpq does). We look the file up ourselves with the `pgpass` module node-pg itself uses:
 * node-pg's built-in lookup prints a deprecation warning at every connection since pg 8.16,
 * and that would land in the keeper's log at every probe.
 *
 * Returns a function for node-pg's `password` option (it calls it once per connection,
 * after the socket is open), or undefined when the conninfo carries the password.
 */
export function passwordLookup(
  params: ConnParams,
  target: HostTarget,
): (() => Promise<string | undefined>) | undefined {
  if (params.password !== undefined) return undefined;
  // Read at connection time, like libpq (the pgpass module reads PGPASSFILE there too).
  const env = process.env;
  return async () => {
    if (env.PGPASSWORD !== undefined && env.PGPASSWORD !== '') return env.PGPASSWORD;
    return new Promise<string | undefined>((resolve) => {
      pgpass(
        {
          // libpq matches a unix-socket connection against the host name "localhost".
          host: target.host.startsWith('/') ? 'localhost' : target.host,
          port: target.port,
          database: params.dbname ?? params.user ?? env.USER ?? '',
          user: params.user ?? env.PGUSER ?? env.USER ?? '',
        },
        (password: string | undefined) => resolve(password),
      );
    });
  };
}

/** node-pg's words for "the server asked for a password and the client had none". */
export const MISSING_PASSWORD = /client password must be a string|password must be a string/i;
