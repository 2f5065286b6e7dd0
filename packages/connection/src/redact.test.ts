import { describe, expect, it } from 'vitest';
import { redactConninfo, redactParams } from './redact.js';

describe('redactConninfo', () => {
  const cases: Array<[string, string, string]> = [
    ['key=value', 'host=a password=s3cret user=u', 'host=a password=*** user=u'],
    ['quoted with spaces', "host=a password='s3 cr et' user=u", 'host=a password=*** user=u'],
    ['quoted with escaped quote', "password='it\\'s' host=a", 'password=*** host=a'],
    ['spaces around =', 'password = s3cret host=a', 'password = *** host=a'],
    ['sslpassword too', 'sslpassword=k3y host=a', 'sslpassword=*** host=a'],
    ['no password', 'host=a user=u', 'host=a user=u'],
    ['URI userinfo', 'postgresql://bob:s3cret@h:5432/db', 'postgresql://bob:***@h:5432/db'],
    ['URI userinfo with raw @', 'postgres://bob:s3@cret@h/db', 'postgres://bob:***@h/db'],
    ['URI without password', 'postgresql://bob@h/db', 'postgresql://bob@h/db'],
    ['URI without credentials, with port', 'postgresql://h:5432/db', 'postgresql://h:5432/db'],
    [
      'URI query password',
      'postgresql://h/db?password=s3cret&sslmode=require',
      'postgresql://h/db?password=***&sslmode=require',
    ],
    // In free text the end of an unquoted value is unknowable; masking runs to whitespace.
    [
      'free text embedding a conninfo',
      'could not connect with "host=a password=s3cret": refused',
      'could not connect with "host=a password=*** refused',
    ],
    ['free text embedding a URI', 'dial postgres://u:s3cret@h failed', 'dial postgres://u:***@h failed'],
    ['unterminated quote still masked', "host=a password='s3cret", 'host=a password=***'],
    ['unparsable with password', 'garbage (password=s3cret) more', 'garbage (password=*** more'],
    [
      'URI nested in a dbname value',
      "dbname='postgres://u:s3cret@h/d' host=a",
      "dbname='postgres://u:***@h/d' host=a",
    ],
    ['keyword not a password', 'mypassword_hint=visible', 'mypassword_hint=visible'],
  ];
  it.each(cases)('%s', (_name, input, expected) => {
    expect(redactConninfo(input)).toBe(expected);
  });

  it('never throws and never leaks, whatever the input', () => {
    const inputs = [
      "password='",
      'password=',
      '=',
      "'''",
      'postgresql://[',
      'postgresql://u:p',
      '\\',
      'x=\\',
    ];
    for (const s of inputs) expect(() => redactConninfo(s)).not.toThrow();
    expect(redactConninfo('postgresql://u:topsecret@[::1')).not.toContain('topsecret');
  });
});

describe('redactParams', () => {
  it('masks secret keywords and leaves the rest', () => {
    expect(redactParams({ host: 'h', password: 'x', sslpassword: 'y', user: 'u' })).toEqual({
      host: 'h',
      password: '***',
      sslpassword: '***',
      user: 'u',
    });
  });
});
