import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SandboxError } from './errors.js';

/** PEM files of a test etcd with TLS: its own CA, one server certificate for 127.0.0.1, one client. */
export interface EtcdTlsFiles {
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

/** The PEM texts a client presents (node:https options). */
export interface EtcdTlsClient {
  ca: string;
  cert: string;
  key: string;
}

/**
 * Makes a throw-away CA and certificates with Debian's openssl (installed by .ci/run): the
 * server's for IP 127.0.0.1 and localhost, the client's for user `root` (etcd maps a client
 * certificate's CN to a user when auth is on).
 */
export function makeEtcdTls(dir: string): EtcdTlsFiles {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const f = (name: string) => join(dir, name);
  const ssl = (args: string[]) => {
    try {
      execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (err) {
      throw new SandboxError('SANDBOX_TLS', `openssl ${args[0]} failed: ${(err as Error).message}`, {
        dir,
      });
    }
  };
  const days = ['-days', '2'];
  ssl([
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    f('ca.key'),
    '-out',
    f('ca.pem'),
    ...days,
    '-subj',
    '/CN=pgfleet test etcd CA',
  ]);
  const issue = (name: string, cn: string, ext: string) => {
    writeFileSync(f(`${name}.ext`), ext);
    ssl([
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      f(`${name}.key`),
      '-out',
      f(`${name}.csr`),
      '-subj',
      `/CN=${cn}`,
    ]);
    ssl([
      'x509',
      '-req',
      '-in',
      f(`${name}.csr`),
      '-CA',
      f('ca.pem'),
      '-CAkey',
      f('ca.key'),
      '-CAcreateserial',
      '-out',
      f(`${name}.pem`),
      ...days,
      '-extfile',
      f(`${name}.ext`),
    ]);
  };
  issue(
    'server',
    '127.0.0.1',
    'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n',
  );
  issue('client', 'root', 'extendedKeyUsage=clientAuth\n');
  return {
    ca: f('ca.pem'),
    serverCert: f('server.pem'),
    serverKey: f('server.key'),
    clientCert: f('client.pem'),
    clientKey: f('client.key'),
  };
}

export function tlsClient(files: EtcdTlsFiles): EtcdTlsClient {
  return {
    ca: readFileSync(files.ca, 'utf8'),
    cert: readFileSync(files.clientCert, 'utf8'),
    key: readFileSync(files.clientKey, 'utf8'),
  };
}
