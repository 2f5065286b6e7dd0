import { describe, expect, it } from 'vitest';
import {
  findPgpassPassword,
  type PgpassIo,
  passwordFromEnvironment,
  pgpassFilePath,
  pgpassHost,
} from './pgpass.js';

const lookup = { host: 'db.example', port: '5432', dbname: 'app', user: 'repl' };

describe('findPgpassPassword', () => {
  const cases: Array<[string, string, typeof lookup, string | undefined]> = [
    ['exact line', 'db.example:5432:app:repl:s3cret', lookup, 's3cret'],
    ['first match wins', '*:*:*:repl:first\ndb.example:5432:app:repl:second', lookup, 'first'],
    ['wildcards', '*:*:*:*:any', lookup, 'any'],
    ['no match', 'other:5432:app:repl:x', lookup, undefined],
    ['port must match', 'db.example:5433:app:repl:x', lookup, undefined],
    ['comment lines are skipped', '#db.example:5432:app:repl:no\n*:*:*:*:yes', lookup, 'yes'],
    ['CRLF line endings', 'db.example:5432:app:repl:crlf\r\n', lookup, 'crlf'],
    ['escaped colon and backslash in the password', '*:*:*:*:a\\:b\\\\c', lookup, 'a:b\\c'],
    ['the password ends at an unescaped colon', '*:*:*:*:pw:ignored', lookup, 'pw'],
    ['escaped colon in a field', 'db\\:x:5432:app:repl:esc', { ...lookup, host: 'db:x' }, 'esc'],
    ['a field must match whole, not as a prefix', 'db.ex:5432:app:repl:x', lookup, undefined],
    ['a star only matches a whole field', 'db*:5432:app:repl:x', lookup, undefined],
    ['an empty password field', '*:*:*:*:', lookup, ''],
    ['a line with too few fields matches nothing', 'db.example:5432:app', lookup, undefined],
  ];
  it.each(cases)('%s', (_name, contents, l, expected) => {
    expect(findPgpassPassword(contents, l)).toBe(expected);
  });
  it('never matches without a user or database (libpq returns nothing then)', () => {
    expect(findPgpassPassword('*:*:*:*:x', { ...lookup, user: '' })).toBeUndefined();
    expect(findPgpassPassword('*:*:*:*:x', { ...lookup, dbname: '' })).toBeUndefined();
  });
});

describe('pgpassHost', () => {
  it.each([
    [undefined, 'localhost'],
    ['', 'localhost'],
    ['/var/run/postgresql', 'localhost'],
    ['/tmp/', 'localhost'],
    ['/srv/sockets', '/srv/sockets'],
    ['10.0.0.1', '10.0.0.1'],
  ])('%s → %s', (host, expected) => {
    expect(pgpassHost(host)).toBe(expected);
  });
});

describe('pgpassFilePath', () => {
  it('prefers the passfile keyword, then PGPASSFILE, then ~/.pgpass', () => {
    expect(pgpassFilePath({ passfile: '/k' }, { PGPASSFILE: '/e', HOME: '/h' }, 'linux')).toBe('/k');
    expect(pgpassFilePath({}, { PGPASSFILE: '/e', HOME: '/h' }, 'linux')).toBe('/e');
    expect(pgpassFilePath({}, { HOME: '/h' }, 'linux')).toBe('/h/.pgpass');
    expect(pgpassFilePath({}, { APPDATA: 'C:\\AppData' }, 'win32')).toMatch(/postgresql.pgpass\.conf$/);
  });
});

describe('passwordFromEnvironment', () => {
  const file = (mode: number, contents = '*:*:*:*:filepw', isFile = true): PgpassIo => ({
    stat: async () => ({ isFile, mode }),
    readFile: async () => contents,
  });
  it('uses PGPASSWORD before the file', async () => {
    const pw = await passwordFromEnvironment({}, lookup, {
      env: { PGPASSWORD: 'envpw' },
      io: file(0o100600),
    });
    expect(pw).toBe('envpw');
  });
  it('reads a private file', async () => {
    const pw = await passwordFromEnvironment({}, lookup, {
      env: { HOME: '/h' },
      io: file(0o100600),
      platform: 'linux',
    });
    expect(pw).toBe('filepw');
  });
  it('ignores a file that group or others can read, with a warning naming it', async () => {
    const warnings: string[] = [];
    const pw = await passwordFromEnvironment({}, lookup, {
      env: { PGPASSFILE: '/etc/pw' },
      io: file(0o100640),
      platform: 'linux',
      onWarning: (m) => warnings.push(m),
    });
    expect(pw).toBeUndefined();
    expect(warnings).toEqual([expect.stringContaining('"/etc/pw" has group or world access')]);
  });
  it('ignores something that is not a plain file', async () => {
    const warnings: string[] = [];
    const pw = await passwordFromEnvironment({}, lookup, {
      env: { PGPASSFILE: '/dev/x' },
      io: file(0o020600, '', false),
      platform: 'linux',
      onWarning: (m) => warnings.push(m),
    });
    expect(pw).toBeUndefined();
    expect(warnings[0]).toMatch(/not a plain file/);
  });
  it('returns nothing when there is no file', async () => {
    const io: PgpassIo = { stat: async () => null, readFile: async () => '' };
    expect(await passwordFromEnvironment({}, lookup, { env: {}, io })).toBeUndefined();
  });
  it('matches a unix socket in the default directory as localhost', async () => {
    const pw = await passwordFromEnvironment(
      {},
      { ...lookup, host: '/var/run/postgresql' },
      { env: {}, io: file(0o100600, 'localhost:5432:app:repl:sock'), platform: 'linux' },
    );
    expect(pw).toBe('sock');
  });
});
