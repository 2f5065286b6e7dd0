import { describe, expect, it } from 'vitest';
import { formatBytes, parseDuration, parseSize } from './units.js';

describe('parseDuration', () => {
  it.each([
    ['500ms', 500],
    ['1s', 1000],
    ['1.5s', 1500],
    ['2m', 120_000],
    ['1h', 3_600_000],
    [' 3s ', 3000],
    ['250', 250],
    [750, 750],
  ] as const)('%j → %d ms', (input, ms) => {
    expect(parseDuration(input)).toBe(ms);
  });
  it.each(['', 'fast', '1d', '-1s', '1 sec', 's', Number.NaN, -5])('rejects %j', (input) => {
    expect(parseDuration(input)).toBeUndefined();
  });
});

describe('parseSize', () => {
  it.each([
    ['0', 0],
    ['512', 512],
    ['512B', 512],
    ['64kB', 65_536],
    ['1KiB', 1024],
    ['1MiB', 1_048_576],
    ['1MB', 1_048_576],
    ['2GiB', 2 * 1024 ** 3],
    [4096, 4096],
  ] as const)('%j → %d bytes', (input, bytes) => {
    expect(parseSize(input)).toBe(bytes);
  });
  it.each(['1XB', 'big', '-1', '1.5.5MB', 1.5])('rejects %j', (input) => {
    expect(parseSize(input)).toBeUndefined();
  });
});

describe('formatBytes', () => {
  it.each([
    [0, '0 B'],
    [1023, '1023 B'],
    [1536, '1.5 KiB'],
    [3n * 1024n * 1024n, '3.0 MiB'],
  ] as const)('%s → %s', (input, text) => {
    expect(formatBytes(input)).toBe(text);
  });
});
