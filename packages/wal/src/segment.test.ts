import { describe, expect, it } from 'vitest';
import { formatLsn, parseLsn } from './lsn.js';
import {
  assertWalSegmentSize,
  DEFAULT_WAL_SEGMENT_SIZE,
  isValidWalSegmentSize,
  parseWalSegmentName,
  WalSegmentError,
  walSegmentName,
  walSegmentOffset,
} from './segment.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

describe('walSegmentName', () => {
  it.each([
    // [lsn, timeline, segment size, file name]
    ['0/16B3748', 1, 16 * MiB, '000000010000000000000001'],
    ['0/0', 1, 16 * MiB, '000000010000000000000000'],
    ['0/FFFFFF', 1, 16 * MiB, '000000010000000000000000'],
    ['0/1000000', 1, 16 * MiB, '000000010000000000000001'],
    ['0/FF000000', 1, 16 * MiB, '0000000100000000000000FF'],
    ['1/0', 1, 16 * MiB, '000000010000000100000000'],
    ['16/B374D848', 1, 16 * MiB, '0000000100000016000000B3'],
    ['16/B374D848', 0x1a, 16 * MiB, '0000001A00000016000000B3'],
    ['FFFFFFFF/FFFFFFFF', 0xffffffff, 16 * MiB, 'FFFFFFFFFFFFFFFF000000FF'],
    ['1/100000', 1, MiB, '000000010000000100000001'],
    ['0/FFFFFFFF', 1, MiB, '000000010000000000000FFF'],
    ['5/C0000000', 2, GiB, '000000020000000500000003'],
    ['5/BFFFFFFF', 2, GiB, '000000020000000500000002'],
    ['3/4000000', 3, 64 * MiB, '000000030000000300000001'],
  ])('%s on timeline %i with %i-byte segments is in %s', (lsn, tli, size, name) => {
    expect(walSegmentName(parseLsn(lsn), tli, size)).toBe(name);
  });

  it('defaults to 16 MiB segments', () => {
    expect(DEFAULT_WAL_SEGMENT_SIZE).toBe(16 * MiB);
    expect(walSegmentName(parseLsn('16/B374D848'), 1)).toBe('0000000100000016000000B3');
  });

  it.each([0, -1, 1.5, 2 ** 32])('rejects timeline %s', (tli) => {
    expect(() => walSegmentName(parseLsn('0/0'), tli)).toThrow(WalSegmentError);
  });
});

describe('segment size validation', () => {
  it.each([
    [MiB, true],
    [2 * MiB, true],
    [16 * MiB, true],
    [512 * MiB, true],
    [GiB, true],
    [MiB / 2, false],
    [2 * GiB, false],
    [3 * MiB, false],
    [16 * MiB + 1, false],
    [0, false],
    [-16 * MiB, false],
    [Number.NaN, false],
  ])('%s bytes valid: %s', (size, valid) => {
    expect(isValidWalSegmentSize(size)).toBe(valid);
    if (valid) expect(() => assertWalSegmentSize(size)).not.toThrow();
    else
      expect(() => assertWalSegmentSize(size)).toThrow(
        expect.objectContaining({ code: 'WAL_SEGMENT_INVALID' }),
      );
  });

  it('validates the size in walSegmentName too', () => {
    expect(() => walSegmentName(parseLsn('0/0'), 1, 3 * MiB)).toThrow(/power of two/);
  });
});

describe('parseWalSegmentName', () => {
  it.each([
    ['000000010000000000000001', 16 * MiB, 1, 1n, '0/1000000'],
    ['0000000100000016000000B3', 16 * MiB, 1, 0x16b3n, '16/B3000000'],
    ['0000001A00000000000000FF', 16 * MiB, 26, 0xffn, '0/FF000000'],
    ['FFFFFFFFFFFFFFFF000000FF', 16 * MiB, 0xffffffff, 0xffffffffffn, 'FFFFFFFF/FF000000'],
    ['000000020000000500000003', GiB, 2, 23n, '5/C0000000'],
    ['000000010000000100000FFF', MiB, 1, 0x1fffn, '1/FFF00000'],
  ])('%s (%i-byte segments) → timeline %i, segment %s, start %s', (name, size, tli, segno, start) => {
    const seg = parseWalSegmentName(name, size);
    expect(seg).toEqual({ timeline: tli, segmentNumber: segno, startLsn: parseLsn(start) });
    expect(formatLsn(seg.startLsn)).toBe(start);
    expect(walSegmentName(seg.startLsn, seg.timeline, size)).toBe(name);
  });

  it.each([
    ['', 'empty'],
    ['00000001000000000000001', '23 chars'],
    ['0000000100000000000000010', '25 chars'],
    ['0000000100000016000000b3', 'lowercase (PostgreSQL writes uppercase)'],
    ['00000001000000000000000G', 'non-hex'],
    ['000000010000000000000001.partial', 'suffix'],
    ['00000001.history', 'history file'],
    ['000000000000000000000001', 'timeline 0'],
    ['000000010000000000000100', 'segment part beyond 4 GiB / 16 MiB'],
  ])('rejects %j (%s)', (name) => {
    expect(() => parseWalSegmentName(name)).toThrow(WalSegmentError);
  });

  it('checks the segment part against the segment size', () => {
    expect(parseWalSegmentName('000000010000000000000100', MiB).segmentNumber).toBe(0x100n);
    expect(() => parseWalSegmentName('000000010000000000000004', GiB)).toThrow(/must be below 00000004/);
  });
});

describe('walSegmentOffset', () => {
  it.each([
    ['0/16B3748', 16 * MiB, 0x6b3748],
    ['0/1000000', 16 * MiB, 0],
    ['16/B374D848', 16 * MiB, 0x74d848],
    ['5/C0000001', GiB, 1],
  ])('%s with %i-byte segments is at offset %i', (lsn, size, offset) => {
    expect(walSegmentOffset(parseLsn(lsn), size)).toBe(offset);
  });
});
