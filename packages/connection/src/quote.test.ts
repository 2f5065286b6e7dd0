import { describe, expect, it } from 'vitest';
import { quoteIdent, quoteLiteral, quoteQualified } from './quote.js';

describe('quoteIdent', () => {
  const cases: Array<[string, string]> = [
    ['simple', '"simple"'],
    ['MixedCase', '"MixedCase"'],
    ['with space', '"with space"'],
    ['has"quote', '"has""quote"'],
    ['""', '""""""'],
    ['données', '"données"'],
    ['表', '"表"'],
    ['select', '"select"'],
    ['a.b', '"a.b"'],
  ];
  it.each(cases)('%s → %s', (input, expected) => {
    expect(quoteIdent(input)).toBe(expected);
  });
  it('rejects empty names and NUL bytes', () => {
    expect(() => quoteIdent('')).toThrow(/empty/);
    expect(() => quoteIdent('a\0b')).toThrow(/NUL/);
  });
  it('qualifies schema and name', () => {
    expect(quoteQualified('My Schema', 't"1')).toBe('"My Schema"."t""1"');
  });
});

describe('quoteLiteral', () => {
  const cases: Array<[string, string]> = [
    ['plain', "'plain'"],
    ['', "''"],
    ["it's", "'it''s'"],
    ['back\\slash', "E'back\\\\slash'"],
    ["both'\\", "E'both''\\\\'"],
    ['ünïcödé', "'ünïcödé'"],
  ];
  it.each(cases)('%s → %s', (input, expected) => {
    expect(quoteLiteral(input)).toBe(expected);
  });
  it('rejects NUL bytes', () => {
    expect(() => quoteLiteral('a\0')).toThrow(/NUL/);
  });
});
