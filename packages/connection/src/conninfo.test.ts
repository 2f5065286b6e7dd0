import { describe, expect, it } from 'vitest';
import { type ConnParams, formatConninfo, formatUri, parseConninfo, withConninfo } from './conninfo.js';
import { ConninfoError } from './errors.js';

describe('parseConninfo key=value form', () => {
  const cases: Array<[string, string, ConnParams]> = [
    [
      'plain pairs',
      'host=localhost port=5432 dbname=app',
      { host: 'localhost', port: '5432', dbname: 'app' },
    ],
    ['whitespace around =', 'host = db1   port= 5433\tuser =bob', { host: 'db1', port: '5433', user: 'bob' }],
    ['leading/trailing whitespace', '  host=a  ', { host: 'a' }],
    ['empty input', '', {}],
    ['quoted value with spaces', "password='a b  c'", { password: 'a b  c' }],
    ['escaped quote inside quotes', "password='it\\'s'", { password: "it's" }],
    ['escaped backslash inside quotes', "password='a\\\\b'", { password: 'a\\b' }],
    ['escape in unquoted value', 'password=a\\ b\\\\c', { password: 'a b\\c' }],
    ['empty quoted value', "password='' user=x", { password: '', user: 'x' }],
    ['equals sign inside value', 'options=-c\\ search_path=x', { options: '-c search_path=x' }],
    ['unicode', "dbname='bäse données' user=ユーザー", { dbname: 'bäse données', user: 'ユーザー' }],
    ['multi-host', 'host=a,b port=5432,5433', { host: 'a,b', port: '5432,5433' }],
    ['IPv6 host', 'host=::1 port=5432', { host: '::1', port: '5432' }],
    ['unix socket directory', 'host=/var/run/postgresql', { host: '/var/run/postgresql' }],
    ['later duplicate wins', 'host=a host=b', { host: 'b' }],
    ['value right after = then next pair (libpq takes the next word)', 'host= port=1', { host: 'port=1' }],
  ];
  it.each(cases)('%s', (_name, input, expected) => {
    expect(parseConninfo(input)).toEqual(expected);
  });

  const bad: Array<[string, string, RegExp]> = [
    ['unknown keyword', 'host=a colour=blue', /invalid connection option "colour"/],
    ['typo keyword', 'hots=a', /"hots"/],
    ['missing =', 'host', /missing "=" after "host"/],
    ['unterminated quote', "password='abc", /unterminated quoted string/],
    ['empty keyword', '=x', /invalid connection option ""/],
  ];
  it.each(bad)('rejects %s', (_name, input, message) => {
    expect(() => parseConninfo(input)).toThrow(ConninfoError);
    expect(() => parseConninfo(input)).toThrow(message);
  });

  it('names the bad keyword in details and never echoes the password', () => {
    try {
      parseConninfo("password='s3cret' bogus=1");
      expect.unreachable();
    } catch (err) {
      expect((err as ConninfoError).details.keyword).toBe('bogus');
      expect((err as ConninfoError).code).toBe('CONNINFO_INVALID');
      expect((err as Error).message).not.toContain('s3cret');
    }
  });
});

describe('parseConninfo URI form', () => {
  const cases: Array<[string, string, ConnParams]> = [
    ['bare scheme', 'postgresql://', {}],
    ['postgres scheme', 'postgres://h', { host: 'h' }],
    [
      'full',
      'postgresql://bob:pw@db:5433/app',
      { user: 'bob', password: 'pw', host: 'db', port: '5433', dbname: 'app' },
    ],
    ['user without password', 'postgresql://bob@db', { user: 'bob', host: 'db' }],
    [
      'percent-encoded credentials',
      'postgresql://b%40b:p%3Aw%2F%40@h',
      { user: 'b@b', password: 'p:w/@', host: 'h' },
    ],
    ['percent-encoded unicode', 'postgresql://h/d%C3%A9j%C3%A0', { host: 'h', dbname: 'déjà' }],
    ['raw unicode', 'postgresql://h/déjà', { host: 'h', dbname: 'déjà' }],
    ['IPv6', 'postgresql://[::1]:5432/db', { host: '::1', port: '5432', dbname: 'db' }],
    ['IPv6 with zone', 'postgresql://[fe80::1%25eth0]/db', { host: 'fe80::1%eth0', dbname: 'db' }],
    [
      'multi-host with ports',
      'postgresql://a:5432,b:5433/db',
      { host: 'a,b', port: '5432,5433', dbname: 'db' },
    ],
    ['multi-host partial ports', 'postgresql://a:5432,b/db', { host: 'a,b', port: '5432,', dbname: 'db' }],
    ['multi-host with IPv6', 'postgresql://[::1]:1,h2:2', { host: '::1,h2', port: '1,2' }],
    [
      'unix socket in host',
      'postgresql://%2Fvar%2Frun%2Fpostgresql/db',
      { host: '/var/run/postgresql', dbname: 'db' },
    ],
    ['port without host', 'postgresql://:5433/db', { port: '5433', dbname: 'db' }],
    ['empty host, dbname only', 'postgresql:///db', { dbname: 'db' }],
    [
      'query params',
      'postgresql://h/db?sslmode=require&application_name=my%20app',
      { host: 'h', dbname: 'db', sslmode: 'require', application_name: 'my app' },
    ],
    ['host as query param (socket dir)', 'postgresql:///db?host=/tmp', { dbname: 'db', host: '/tmp' }],
    ['ssl=true maps to sslmode=require', 'postgresql://h?ssl=true', { host: 'h', sslmode: 'require' }],
    [
      'query without path',
      'postgresql://h?target_session_attrs=read-write',
      { host: 'h', target_session_attrs: 'read-write' },
    ],
  ];
  it.each(cases)('%s', (_name, input, expected) => {
    expect(parseConninfo(input)).toEqual(expected);
  });

  const bad: Array<[string, string, RegExp]> = [
    ['unknown query parameter', 'postgresql://h?colour=blue', /invalid URI query parameter "colour"/],
    ['missing = in query', 'postgresql://h?sslmode', /missing key\/value separator/],
    ['extra = in query', 'postgresql://h?a=b=c', /extra key\/value separator/],
    ['bad percent-encoding', 'postgresql://h/db%zz', /invalid percent-encoded token/],
    ['%00', 'postgresql://h/db%00', /forbidden value %00/],
    ['unclosed IPv6 bracket', 'postgresql://[::1/db', /matching "]"/],
    ['junk after IPv6', 'postgresql://[::1]x/db', /unexpected character "x"/],
    ['invalid UTF-8', 'postgresql://h/%C3', /not valid UTF-8/],
  ];
  it.each(bad)('rejects %s', (_name, input, message) => {
    expect(() => parseConninfo(input)).toThrow(ConninfoError);
    expect(() => parseConninfo(input)).toThrow(message);
  });
});

describe('formatConninfo', () => {
  const cases: Array<[string, ConnParams, string]> = [
    ['plain', { host: 'a', port: '5432' }, 'host=a port=5432'],
    ['quotes empty value', { password: '' }, "password=''"],
    ['quotes spaces', { options: '-c a=b' }, "options='-c a=b'"],
    ['escapes quote and backslash', { password: "it's\\x" }, "password='it\\'s\\\\x'"],
    ['unicode needs no quoting', { dbname: 'données' }, 'dbname=données'],
  ];
  it.each(cases)('%s', (_name, params, expected) => {
    expect(formatConninfo(params)).toBe(expected);
  });

  it('rejects unknown keywords', () => {
    expect(() => formatConninfo({ colour: 'x' })).toThrow(/invalid connection option "colour"/);
  });
});

const roundTrip: Array<[string, ConnParams]> = [
  ['simple', { host: 'h', port: '5432', user: 'u', dbname: 'd' }],
  ['password with everything', { host: 'h', user: 'u s', password: "p@ss:w/o'rd\\ %20 é" }],
  ['empty password', { host: 'h', user: 'u', password: '' }],
  ['password without user', { host: 'h', password: 'x' }],
  ['empty user', { host: 'h', user: '' }],
  ['multi-host, one port each', { host: 'a,b,c', port: '1,2,3' }],
  ['multi-host, shared port', { host: 'a,b', port: '5433' }],
  ['multi-host, partial ports', { host: 'a,b', port: '5432,' }],
  ['IPv6', { host: '::1', port: '5432' }],
  ['IPv6 multi-host', { host: '::1,10.0.0.1', port: '1,2' }],
  ['unix socket dir', { host: '/var/run/postgresql', port: '5432' }],
  ['port only', { port: '5433', dbname: 'x' }],
  ['empty port', { host: 'h', port: '' }],
  ['empty host', { host: '', port: '1' }],
  ['empty dbname', { host: 'h', dbname: '' }],
  ['unicode dbname', { host: 'h', dbname: 'データ ベース' }],
  ['options with spaces and =', { host: 'h', options: '-c search_path=a,b -c x=y' }],
  [
    'query keywords',
    { host: 'h', sslmode: 'verify-full', application_name: 'a&b=c', target_session_attrs: 'read-write' },
  ],
  ['dbname with slash and question mark', { host: 'h', dbname: 'a/b?c' }],
];

describe('round trips', () => {
  it.each(roundTrip)('key=value: %s', (_name, params) => {
    expect(parseConninfo(formatConninfo(params))).toEqual(params);
  });
  it.each(roundTrip)('URI: %s', (_name, params) => {
    const uri = formatUri(params);
    expect(uri.startsWith('postgresql://')).toBe(true);
    expect(parseConninfo(uri)).toEqual(params);
  });
});

describe('formatUri', () => {
  it('puts credentials, hosts and ports in the authority', () => {
    expect(
      formatUri({ user: 'u', password: 'p w', host: 'a,b', port: '1,2', dbname: 'd', sslmode: 'require' }),
    ).toBe('postgresql://u:p%20w@a:1,b:2/d?sslmode=require');
  });
  it('brackets IPv6 and encodes socket paths', () => {
    expect(formatUri({ host: '::1', port: '5432' })).toBe('postgresql://[::1]:5432');
    expect(formatUri({ host: '/tmp', dbname: 'd' })).toBe('postgresql://%2Ftmp/d');
  });
});

describe('withConninfo', () => {
  it('overrides and removes keywords, keeping key=value form', () => {
    expect(withConninfo("host=a password='x y' dbname=d", { dbname: 'e', password: undefined })).toBe(
      'host=a dbname=e',
    );
  });
  it('keeps URI form', () => {
    expect(withConninfo('postgresql://u@h/d', { application_name: 'k' })).toBe(
      'postgresql://u@h/d?application_name=k',
    );
  });
  it('rejects unknown override keywords', () => {
    expect(() => withConninfo('host=a', { nope: '1' })).toThrow(ConninfoError);
  });
});
