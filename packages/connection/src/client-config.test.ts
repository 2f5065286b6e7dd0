import { describe, expect, it } from 'vitest';
import {
  clientConfigFor,
  connectTimeoutFor,
  type HostTarget,
  orderTargets,
  resolveTargets,
  singleHostConninfo,
  sslFor,
  targetLabel,
} from './client-config.js';
import { type ConnParams, parseConninfo } from './conninfo.js';
import { ConfigError, ConninfoError } from './errors.js';

describe('resolveTargets', () => {
  const cases: Array<[string, ConnParams, HostTarget[]]> = [
    ['defaults', {}, [{ host: 'localhost', port: 5432 }]],
    ['one host one port', { host: 'a', port: '6000' }, [{ host: 'a', port: 6000 }]],
    [
      'shared port',
      { host: 'a,b', port: '6000' },
      [
        { host: 'a', port: 6000 },
        { host: 'b', port: 6000 },
      ],
    ],
    [
      'port per host',
      { host: 'a,b', port: '1,2' },
      [
        { host: 'a', port: 1 },
        { host: 'b', port: 2 },
      ],
    ],
    [
      'empty port entry means default',
      { host: 'a,b', port: '1,' },
      [
        { host: 'a', port: 1 },
        { host: 'b', port: 5432 },
      ],
    ],
    [
      'empty host entry means default',
      { host: ',b' },
      [
        { host: 'localhost', port: 5432 },
        { host: 'b', port: 5432 },
      ],
    ],
    ['hostaddr alone', { hostaddr: '10.0.0.1' }, [{ host: '10.0.0.1', port: 5432, hostaddr: '10.0.0.1' }]],
    [
      'host and hostaddr',
      { host: 'db', hostaddr: '10.0.0.1' },
      [{ host: 'db', port: 5432, hostaddr: '10.0.0.1' }],
    ],
    ['socket dir', { host: '/tmp', port: '5433' }, [{ host: '/tmp', port: 5433 }]],
  ];
  it.each(cases)('%s', (_name, params, expected) => {
    expect(resolveTargets(params)).toEqual(expected);
  });

  const bad: Array<[string, ConnParams, RegExp]> = [
    ['port count mismatch', { host: 'a,b,c', port: '1,2' }, /could not match 2 port numbers to 3 hosts/],
    [
      'hostaddr count mismatch',
      { host: 'a,b', hostaddr: '1.1.1.1' },
      /could not match 1 host addresses to 2/,
    ],
    ['non-numeric port', { host: 'a', port: 'x' }, /invalid port number: "x"/],
    ['port out of range', { port: '70000' }, /invalid port number/],
  ];
  it.each(bad)('rejects %s', (_name, params, message) => {
    expect(() => resolveTargets(params)).toThrow(ConninfoError);
    expect(() => resolveTargets(params)).toThrow(message);
  });
});

describe('targetLabel and orderTargets', () => {
  it('brackets IPv6 in labels', () => {
    expect(targetLabel({ host: '::1', port: 1 })).toBe('[::1]:1');
    expect(targetLabel({ host: 'a', port: 2 })).toBe('a:2');
  });
  const t = resolveTargets({ host: 'a,b,c' });
  it('keeps order unless load_balance_hosts=random', () => {
    expect(orderTargets(t, {}, () => 0).map((x) => x.host)).toEqual(['a', 'b', 'c']);
  });
  it('shuffles with the injected random', () => {
    expect(orderTargets(t, { load_balance_hosts: 'random' }, () => 0).map((x) => x.host)).toEqual([
      'b',
      'c',
      'a',
    ]);
  });
  it('rejects unknown load_balance_hosts', () => {
    expect(() => orderTargets(t, { load_balance_hosts: 'roundrobin' }, Math.random)).toThrow(
      /load_balance_hosts/,
    );
  });
});

describe('clientConfigFor', () => {
  const target = { host: 'db', port: 5433 };
  it('maps libpq keywords to node-pg options', () => {
    const c = clientConfigFor(
      {
        user: 'u',
        password: 'p',
        dbname: 'd',
        application_name: 'app',
        options: '-c search_path=x',
        keepalives_idle: '30',
      },
      target,
      { statementTimeoutMs: 500, connectTimeoutMs: 2000 },
    );
    expect(c).toMatchObject({
      host: 'db',
      port: 5433,
      user: 'u',
      password: 'p',
      database: 'd',
      application_name: 'app',
      options: '-c search_path=x',
      keepAlive: true,
      keepAliveInitialDelayMillis: 30_000,
      statement_timeout: 500,
      connectionTimeoutMillis: 2000,
      ssl: false,
    });
    expect(c.replication).toBeUndefined();
  });
  it('appends session settings after the conninfo options, escaping spaces and backslashes', () => {
    const c = clientConfigFor({ options: '-c search_path=x' }, target, {
      settings: { DateStyle: 'ISO, YMD', search_path: 'a\\b', TimeZone: 'UTC' },
    });
    expect(c.options).toBe('-c search_path=x -c DateStyle=ISO,\\ YMD -c search_path=a\\\\b -c TimeZone=UTC');
    expect(clientConfigFor({}, target, { settings: {} }).options).toBeUndefined();
    expect(() => clientConfigFor({}, target, { settings: { 'bad name': 'x' } })).toThrow(/bad name/);
  });
  it('looks a missing password up itself (PGPASSWORD, then the password file), never through node-pg', async () => {
    const c = clientConfigFor({ user: 'u' }, target, { pgpass: { env: { PGPASSWORD: 'from-env' } } });
    expect(typeof c.password).toBe('function');
    const fn = c.password as unknown as (cp: { user: string; database: string }) => Promise<string>;
    expect(await fn({ user: 'u', database: 'd' })).toBe('from-env');
    const file = '*:5433:d:u:from-file\n';
    const io = { stat: async () => ({ isFile: true, mode: 0o100600 }), readFile: async () => file };
    const c2 = clientConfigFor({ user: 'u', password: '' }, target, { pgpass: { env: {}, io } });
    const fn2 = c2.password as unknown as (cp: { user: string; database: string }) => Promise<string>;
    expect(await fn2({ user: 'u', database: 'd' })).toBe('from-file');
    expect(await fn2({ user: 'u', database: 'other' })).toBeUndefined();
  });
  it('lets options override conninfo', () => {
    const c = clientConfigFor({ application_name: 'a', replication: 'true' }, target, {
      applicationName: 'b',
      replication: 'database',
    });
    expect(c.application_name).toBe('b');
    expect(c.replication).toBe('database');
  });
  const repl: Array<[string | undefined, 'database' | true | undefined, string | undefined]> = [
    ['true', undefined, 'true'],
    ['on', undefined, 'true'],
    ['1', undefined, 'true'],
    ['database', undefined, 'database'],
    ['off', undefined, undefined],
    [undefined, true, 'true'],
    [undefined, 'database', 'database'],
  ];
  it.each(repl)('replication=%s option=%s → %s', (param, opt, expected) => {
    const params: ConnParams = param === undefined ? {} : { replication: param };
    expect(clientConfigFor(params, target, { replication: opt }).replication).toBe(expected);
  });
  it('rejects bad replication values', () => {
    expect(() => clientConfigFor({ replication: 'maybe' }, target)).toThrow(/invalid replication value/);
  });
  it('dials hostaddr', () => {
    expect(clientConfigFor({}, { host: 'db', port: 1, hostaddr: '10.1.1.1' }).host).toBe('10.1.1.1');
  });
  it('disables keepalive with keepalives=0', () => {
    expect(clientConfigFor({ keepalives: '0' }, target).keepAlive).toBe(false);
  });
  it.each(['service', 'requirepeer', 'require_auth'])('refuses %s rather than ignoring it', (key) => {
    expect(() => clientConfigFor({ [key]: 'x' }, target)).toThrow(ConfigError);
    expect(() => clientConfigFor({ [key]: 'x' }, target)).toThrow(key);
  });
});

describe('connectTimeoutFor', () => {
  const cases: Array<[string, ConnParams, number | undefined, number | undefined]> = [
    ['nothing', {}, undefined, undefined],
    ['option wins', { connect_timeout: '10' }, 1500, 1500],
    ['conninfo seconds', { connect_timeout: '5' }, undefined, 5000],
    ['libpq raises 1 s to 2 s', { connect_timeout: '1' }, undefined, 2000],
    ['0 means none', { connect_timeout: '0' }, undefined, undefined],
  ];
  it.each(cases)('%s', (_name, params, opt, expected) => {
    expect(connectTimeoutFor(params, opt === undefined ? {} : { connectTimeoutMs: opt })).toBe(expected);
  });
  it('rejects garbage', () => {
    expect(() => connectTimeoutFor({ connect_timeout: 'soon' }, {})).toThrow(/connect_timeout/);
  });
});

describe('sslFor', () => {
  const target = { host: 'db.example', port: 5432 };
  const read = (p: string) => `<${p}>`;
  it('is plain text without sslmode (node-pg default, no TLS round trip)', () => {
    expect(sslFor({}, target, read)).toBe(false);
  });
  it.each(['disable', 'allow'])('%s → plain text', (mode) => {
    expect(sslFor({ sslmode: mode }, target, read)).toBe(false);
  });
  it('prefer asks the caller to fall back', () => {
    expect(sslFor({ sslmode: 'prefer' }, target, read)).toBe('prefer');
  });
  it('require encrypts without verifying', () => {
    expect(sslFor({ sslmode: 'require' }, target, read)).toEqual({ rejectUnauthorized: false });
  });
  it('verify-full checks the name and loads files', () => {
    expect(
      sslFor({ sslmode: 'verify-full', sslrootcert: '/ca', sslcert: '/c', sslkey: '/k' }, target, read),
    ).toEqual({
      ca: '</ca>',
      cert: '</c>',
      key: '</k>',
      rejectUnauthorized: true,
      servername: 'db.example',
    });
  });
  it('verify-ca verifies the chain but not the name', () => {
    const ssl = sslFor({ sslmode: 'verify-ca', sslrootcert: '/ca' }, target, read);
    expect(ssl).toMatchObject({ ca: '</ca>', rejectUnauthorized: true });
    expect(typeof ssl === 'object' && ssl.checkServerIdentity?.('x', {} as never)).toBeUndefined();
  });
  it('rejects unknown modes', () => {
    expect(() => sslFor({ sslmode: 'sometimes' }, target, read)).toThrow(/invalid sslmode value/);
  });
});

describe('singleHostConninfo', () => {
  it('narrows a multi-host conninfo to one target, dropping what means nothing for one host', () => {
    const params = parseConninfo(
      'host=h1,h2 hostaddr=10.0.0.1,10.0.0.2 port=5432,5433 dbname=app target_session_attrs=read-write load_balance_hosts=random',
    );
    const [, second] = resolveTargets(params);
    expect(singleHostConninfo(params, second!)).toEqual({
      host: 'h2',
      hostaddr: '10.0.0.2',
      port: '5433',
      dbname: 'app',
    });
  });
});
