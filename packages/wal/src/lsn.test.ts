import { PgfleetError } from '@pgfleet/connection';
import { describe, expect, it } from 'vitest';
import {
  compareLsn,
  formatLsn,
  isValidLsn,
  type Lsn,
  LsnError,
  lsnAdd,
  lsnDiff,
  MAX_LSN,
  maxLsn,
  minLsn,
  parseLsn,
  parseNullableLsn,
  toLsn,
  ZERO_LSN,
} from './lsn.js';

const L = (text: string): Lsn => parseLsn(text);

describe('parseLsn', () => {
  it.each([
    ['0/0', 0n],
    ['0/1', 1n],
    ['0/16B3748', 0x16b3748n],
    ['16/B374D848', 0x16b374d848n],
    ['16/b374d848', 0x16b374d848n],
    ['00000016/B374D848', 0x16b374d848n],
    ['0/00000001', 1n],
    ['1/0', 0x100000000n],
    ['FFFFFFFF/FFFFFFFF', 0xffffffffffffffffn],
    ['ffffffff/ffffffff', 0xffffffffffffffffn],
    ['aBcD/EfAb', 0xabcd0000efabn],
  ])('parses %j as %s', (text, expected) => {
    expect(parseLsn(text)).toBe(expected);
  });

  it.each([
    [''],
    ['/'],
    ['0'],
    ['16B374D848'],
    ['0/'],
    ['/0'],
    ['0/0/0'],
    ['G/0'],
    ['0/XYZ'],
    ['-1/0'],
    ['0/-1'],
    ['+1/0'],
    [' 0/0'],
    ['0/0 '],
    ['0 /0'],
    ['0x1/0'],
    ['100000000/0'],
    ['0/100000000'],
    ['123456789/1'],
    ['1.5/0'],
    ['0/0\n'],
  ])('rejects %j with LSN_INVALID quoting the input', (text) => {
    const err = (() => {
      try {
        parseLsn(text);
      } catch (e) {
        return e;
      }
      throw new Error('parseLsn accepted garbage');
    })();
    expect(err).toBeInstanceOf(LsnError);
    expect(err).toBeInstanceOf(PgfleetError);
    expect((err as LsnError).code).toBe('LSN_INVALID');
    expect((err as LsnError).message).toContain(JSON.stringify(text));
    expect((err as LsnError).details.input).toBe(text);
  });

  it('rejects values that are not strings', () => {
    expect(() => parseLsn(42 as unknown as string)).toThrow(LsnError);
    expect(() => parseLsn(null as unknown as string)).toThrow(LsnError);
  });

  it('maps SQL NULL to null in parseNullableLsn', () => {
    expect(parseNullableLsn(null)).toBeNull();
    expect(parseNullableLsn(undefined)).toBeNull();
    expect(parseNullableLsn('1/2')).toBe(0x100000002n);
  });
});

describe('isValidLsn', () => {
  it.each([
    ['0/0', true],
    ['FFFFFFFF/FFFFFFFF', true],
    ['00000000/00000000', true],
    ['', false],
    ['1/2/3', false],
    ['100000000/0', false],
  ])('%j → %s', (text, valid) => {
    expect(isValidLsn(text)).toBe(valid);
  });
});

describe('formatLsn', () => {
  it.each([
    [0n, '0/0'],
    [1n, '0/1'],
    [0x16b3748n, '0/16B3748'],
    [0x16b374d848n, '16/B374D848'],
    [0x100000000n, '1/0'],
    [0xffffffffffffffffn, 'FFFFFFFF/FFFFFFFF'],
  ])('formats %s as %s (PostgreSQL %%X/%%X)', (value, text) => {
    expect(formatLsn(toLsn(value))).toBe(text);
  });

  it.each(['00000016/b374d848', '0/00000000', 'ffffffff/FFFFFFFF', '0A/0B'])(
    'round-trips %j to the canonical form',
    (text) => {
      const lsn = parseLsn(text);
      expect(parseLsn(formatLsn(lsn))).toBe(lsn);
      expect(formatLsn(lsn)).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
      expect(formatLsn(lsn)).not.toMatch(/^0[0-9A-F]|\/0[0-9A-F]/);
    },
  );

  it('refuses an out-of-range value smuggled in by a cast', () => {
    expect(() => formatLsn(-1n as Lsn)).toThrow(LsnError);
    expect(() => formatLsn((1n << 64n) as Lsn)).toThrow(LsnError);
  });
});

describe('toLsn', () => {
  it.each([0n, 1n, (1n << 64n) - 1n])('accepts %s', (v) => {
    expect(toLsn(v)).toBe(v);
  });
  it.each([-1n, 1n << 64n, (1n << 64n) + 5n])('rejects %s with LSN_INVALID', (v) => {
    expect(() => toLsn(v)).toThrow(expect.objectContaining({ code: 'LSN_INVALID' }));
  });
});

describe('compareLsn / maxLsn / minLsn', () => {
  it.each([
    ['0/0', '0/0', 0],
    ['0/1', '0/0', 1],
    ['0/0', '0/1', -1],
    // String comparison gets these wrong; numbers do not.
    ['0/9', '0/10', -1],
    ['9/0', '10/0', -1],
    ['0/FFFFFFFF', '1/0', -1],
    ['00000001/0', '1/0', 0],
    ['FFFFFFFF/FFFFFFFF', '0/0', 1],
  ])('compareLsn(%s, %s) = %i', (a, b, expected) => {
    expect(compareLsn(L(a), L(b))).toBe(expected);
  });

  it('sorts numerically', () => {
    const sorted = ['10/0', '9/FF', '0/A', '0/9'].map(L).sort(compareLsn).map(formatLsn);
    expect(sorted).toEqual(['0/9', '0/A', '9/FF', '10/0']);
  });

  it('picks the latest and earliest position', () => {
    expect(formatLsn(maxLsn(L('0/9'), L('0/10'), L('0/A')))).toBe('0/10');
    expect(formatLsn(minLsn(L('1/0'), L('0/FFFFFFFF'), L('2/0')))).toBe('0/FFFFFFFF');
    expect(maxLsn(ZERO_LSN)).toBe(ZERO_LSN);
  });
});

describe('lsnAdd / lsnDiff', () => {
  it.each([
    ['0/0', 0n, '0/0'],
    ['0/FFFFFFFF', 1n, '1/0'],
    ['1/0', -1n, '0/FFFFFFFF'],
    ['16/B374D848', 0x1000n, '16/B374E848'],
    ['FFFFFFFF/FFFFFFFE', 1n, 'FFFFFFFF/FFFFFFFF'],
  ])('%s + %s = %s', (lsn, bytes, expected) => {
    expect(formatLsn(lsnAdd(L(lsn), bytes))).toBe(expected);
  });

  it('accepts a safe-integer number of bytes', () => {
    expect(formatLsn(lsnAdd(L('0/0'), 16 * 1024 * 1024))).toBe('0/1000000');
    expect(() => lsnAdd(L('0/0'), 2 ** 60)).toThrow(LsnError);
    expect(() => lsnAdd(L('0/0'), 0.5)).toThrow(LsnError);
  });

  it.each([
    ['FFFFFFFF/FFFFFFFF', 1n],
    ['0/0', -1n],
  ])('refuses to leave the address space: %s + %s', (lsn, bytes) => {
    expect(() => lsnAdd(L(lsn), bytes)).toThrow(expect.objectContaining({ code: 'LSN_INVALID' }));
  });

  it.each([
    ['0/0', '0/0', 0n],
    ['1/0', '0/FFFFFFFF', 1n],
    ['0/FFFFFFFF', '1/0', -1n],
    ['16/B374D848', '16/B3748000', 0x5848n],
    ['FFFFFFFF/FFFFFFFF', '0/0', (1n << 64n) - 1n],
    ['0/0', 'FFFFFFFF/FFFFFFFF', -((1n << 64n) - 1n)],
  ])('lsnDiff(%s, %s) = %s bytes', (a, b, expected) => {
    expect(lsnDiff(L(a), L(b))).toBe(expected);
  });

  it('has the constants at the ends of the address space', () => {
    expect(formatLsn(ZERO_LSN)).toBe('0/0');
    expect(formatLsn(MAX_LSN)).toBe('FFFFFFFF/FFFFFFFF');
  });
});
