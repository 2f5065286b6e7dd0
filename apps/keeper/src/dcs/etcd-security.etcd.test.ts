import { EtcdCluster } from '@pgfleet/sandbox';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../clock.js';
import { DcsError, DcsErrorCode } from './errors.js';
import { createEtcdDcs, type EtcdDcs } from './etcd-dcs.js';
import type { GatewaySecurity } from './etcd-gateway.js';

/**
 * The keeper's etcd client against real etcd servers that demand credentials: TLS with client
 * certificates (--client-cert-auth), and etcd's own users (auth enable). What a production etcd
 * looks like, and what Patroni's etcd3 settings (cacert, cert, key, username, password) cover.
 */

const logger = pino({ level: 'silent' });
const opened: EtcdDcs[] = [];

function dcsFor(etcd: EtcdCluster, member: string, security: GatewaySecurity): EtcdDcs {
  const dcs = createEtcdDcs({
    endpoints: etcd.endpoints({ from: `keeper-${member}` }),
    prefix: '/pgfleet-sec',
    cluster: 'main',
    memberName: member,
    ttlSeconds: 2,
    requestTimeoutMs: 3_000,
    security,
    logger,
    clock: systemClock,
  });
  opened.push(dcs);
  return dcs;
}

async function rejected(p: Promise<unknown>): Promise<DcsError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DcsError);
  expect((err as DcsError).code).toBe(DcsErrorCode.DCS_REJECTED);
  return err as DcsError;
}

afterAll(async () => {
  await Promise.all(opened.map((d) => d.close().catch(() => {})));
});

describe('etcd with users and passwords (auth enable)', () => {
  let etcd: EtcdCluster;
  const password = 'r00t-secret-pw';

  beforeAll(async () => {
    // Tokens unused for 2 s expire: the re-authentication below is exercised, not assumed.
    etcd = await EtcdCluster.start({ name: 'keeper-auth', authTokenTtlSeconds: 2 });
    await etcd.enableAuth(password);
  });

  afterAll(async () => {
    await etcd?.destroy();
  });

  it('takes and keeps the leader key with a token from username and password', async () => {
    const dcs = dcsFor(etcd, 'a', { username: 'root', password });
    expect((await dcs.acquireLeader()).won).toBe(true);
    expect((await dcs.renewLeader()).held).toBe(true);
    expect((await dcs.readCluster()).leader?.name).toBe('a');
  });

  it('without credentials, or with a wrong password, is refused with a clear error and no password in it', async () => {
    const anonymous = await rejected(dcsFor(etcd, 'b', {}).readCluster());
    expect(anonymous.message).toMatch(/user name is empty|permission denied|token/i);
    const wrong = await rejected(dcsFor(etcd, 'c', { username: 'root', password: 'Wr0ng-pw' }).readCluster());
    expect(wrong.message).toMatch(/etcd refused user root \(dcs\.etcd\.username \/ dcs\.etcd\.password\)/);
    expect(wrong.message).toMatch(/authentication failed/);
    expect(wrong.message).not.toContain('Wr0ng-pw');
  });

  it('gets a new token by itself when etcd dropped the old one (expired)', async () => {
    const dcs = dcsFor(etcd, 'd', { username: 'root', password });
    await dcs.readCluster();
    await new Promise((r) => setTimeout(r, 3500));
    const snap = await dcs.readCluster();
    expect(snap.revision).toMatch(/^\d+$/);
  });
});

describe('etcd over TLS with client certificates', () => {
  let etcd: EtcdCluster;

  beforeAll(async () => {
    etcd = await EtcdCluster.start({ name: 'keeper-tls', tls: true });
  });

  afterAll(async () => {
    await etcd?.destroy();
  });

  it('serves https only, and the keeper leads with the CA and its client certificate', async () => {
    const tls = etcd.tlsClient!;
    expect(etcd.endpoints()[0]).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const dcs = dcsFor(etcd, 'a', { ca: tls.ca, cert: tls.cert, key: tls.key });
    expect((await dcs.acquireLeader()).won).toBe(true);
    expect((await dcs.renewLeader()).held).toBe(true);
  });

  it('without its client certificate, or without the CA, it gets no answer it trusts', async () => {
    const tls = etcd.tlsClient!;
    const noCert = createEtcdDcs({
      endpoints: etcd.endpoints({ from: 'keeper-x' }),
      prefix: '/pgfleet-sec',
      cluster: 'main',
      memberName: 'x',
      ttlSeconds: 2,
      requestTimeoutMs: 1_500,
      security: { ca: tls.ca },
      logger,
      clock: systemClock,
    });
    opened.push(noCert);
    const a = await noCert.readCluster().then(
      () => null,
      (e: unknown) => e as DcsError,
    );
    expect(a?.code).toBe(DcsErrorCode.DCS_UNAVAILABLE);
    const noCa = dcsFor(etcd, 'y', { cert: tls.cert, key: tls.key });
    const b = await noCa.readCluster({ timeoutMs: 1_500 }).then(
      () => null,
      (e: unknown) => e as DcsError,
    );
    expect(b?.message).toMatch(/SELF_SIGNED|self.signed|UNABLE_TO_VERIFY|unable to verify/i);
  });
});
