import { describe, expect, it } from 'vitest';
import { RoleError } from './errors.js';
import { timelineFromRow, timelineFromWalFileName } from './timeline.js';

describe('timelineFromWalFileName', () => {
  it.each([
    ['000000010000000000000003', 1],
    ['000000020000000A000000FF', 2],
    ['0000001A0000000000000001', 26],
    ['FFFFFFFF0000000000000001', 4294967295],
  ])('%s is on timeline %i', (name, tli) => {
    expect(timelineFromWalFileName(name)).toBe(tli);
  });

  it.each(['00000001', '00000001000000000000000G', '00000001000000000000000300000'])('rejects %j', (name) => {
    expect(() => timelineFromWalFileName(name)).toThrow(RoleError);
  });
});

describe('timelineFromRow', () => {
  it('prefers the WAL file name (primary), else the standby timeline', () => {
    expect(
      timelineFromRow({ in_recovery: false, wal_file: '000000030000000000000001', standby_tli: null }),
    ).toBe(3);
    expect(timelineFromRow({ in_recovery: true, wal_file: null, standby_tli: 2 })).toBe(2);
  });
  it('fails loudly when neither is known', () => {
    expect(() => timelineFromRow({ in_recovery: true, wal_file: null, standby_tli: null })).toThrow(
      'could not determine the current timeline',
    );
  });
});
