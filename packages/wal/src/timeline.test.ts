import { describe, expect, it } from 'vitest';
import { formatLsn, parseLsn } from './lsn.js';
import {
  parseTimelineHistory,
  TimelineHistoryError,
  timelineForLsn,
  timelineHistoryFileName,
  timelineSwitchpoint,
} from './timeline.js';

// As written by writeTimeLineHistory: "%u\t%X/%X\t%s\n" per ancestor.
const HISTORY_3 =
  '1\t0/3000060\tno recovery target specified\n\n2\t0/5000108\tbefore 2024-05-01 10:00:00+00\n';

function errorOf(fn: () => unknown): TimelineHistoryError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(TimelineHistoryError);
    return err as TimelineHistoryError;
  }
  throw new Error('expected a TimelineHistoryError');
}

describe('parseTimelineHistory', () => {
  it('parses the entries PostgreSQL writes, oldest first', () => {
    const history = parseTimelineHistory(HISTORY_3, 3);
    expect(history.timeline).toBe(3);
    expect(history.entries.map((e) => [e.timeline, formatLsn(e.switchpoint), e.reason])).toEqual([
      [1, '0/3000060', 'no recovery target specified'],
      [2, '0/5000108', 'before 2024-05-01 10:00:00+00'],
    ]);
  });

  it('infers the file timeline as last parent + 1 when not given', () => {
    expect(parseTimelineHistory(HISTORY_3).timeline).toBe(3);
    expect(parseTimelineHistory('').timeline).toBe(1);
  });

  it('keeps a sibling-skipping timeline when told (timeline 4 branched from 2)', () => {
    const history = parseTimelineHistory('1\t0/3000060\tx\n2\t0/5000108\ty\n', 4);
    expect(history.timeline).toBe(4);
    expect(timelineForLsn(history, parseLsn('0/6000000'))).toBe(4);
  });

  it('ignores comments, blank lines, surrounding whitespace and CRLF', () => {
    const text =
      '# written by hand\r\n\r\n   \r\n  1\t0/3000060\tfirst\r\n\t# indented comment\r\n2 0/5000108   second reason  \r\n';
    const history = parseTimelineHistory(text);
    expect(history.entries).toEqual([
      { timeline: 1, switchpoint: parseLsn('0/3000060'), reason: 'first' },
      { timeline: 2, switchpoint: parseLsn('0/5000108'), reason: 'second reason' },
    ]);
  });

  it('accepts an entry without a reason and padded/lowercase LSNs', () => {
    const history = parseTimelineHistory('1\t00000001/0000abcd\n');
    expect(history.entries).toEqual([{ timeline: 1, switchpoint: parseLsn('1/ABCD'), reason: '' }]);
  });

  it.each([
    ['1\t0/3000060\tok\nfoo\t0/4000000\tbad', 2, /expected/],
    ['1', 1, /expected/],
    ['1\tnot-an-lsn\treason', 1, /invalid switchpoint/],
    ['1\t0/3000060\tok\n\n# c\n2\t0/XYZ\tbad', 4, /invalid switchpoint/],
    ['0\t0/3000060\tzero', 1, /out of range/],
    ['4294967296\t0/3000060\ttoo big', 1, /out of range/],
    ['-1\t0/3000060\tneg', 1, /expected/],
    ['2\t0/3000060\ta\n1\t0/5000000\tb', 2, /must increase/],
    ['1\t0/3000060\ta\n1\t0/5000000\tb', 2, /must increase/],
    ['1\t0/5000000\ta\n2\t0/3000000\tb', 2, /before the previous switchpoint/],
  ])('rejects %j naming line %i', (text, line, message) => {
    const err = errorOf(() => parseTimelineHistory(text));
    expect(err.code).toBe('TIMELINE_HISTORY_INVALID');
    expect(err.details.line).toBe(line);
    expect(err.message).toContain(`line ${line}`);
    expect(err.message).toMatch(message);
  });

  it('rejects a file timeline not above its ancestors', () => {
    const err = errorOf(() => parseTimelineHistory(HISTORY_3, 2));
    expect(err.message).toMatch(/ancestors must be lower/);
    expect(() => parseTimelineHistory('', 0)).toThrow(TimelineHistoryError);
  });
});

describe('timelineForLsn', () => {
  const history = parseTimelineHistory(HISTORY_3, 3);
  it.each([
    ['0/0', 1],
    ['0/300005F', 1],
    // The switchpoint itself is the first byte of the child timeline.
    ['0/3000060', 2],
    ['0/5000107', 2],
    ['0/5000108', 3],
    ['FFFFFFFF/FFFFFFFF', 3],
  ])('%s was written on timeline %i', (lsn, tli) => {
    expect(timelineForLsn(history, parseLsn(lsn))).toBe(tli);
  });

  it('puts everything on timeline 1 when there is no history', () => {
    expect(timelineForLsn(parseTimelineHistory(''), parseLsn('5/0'))).toBe(1);
  });
});

describe('timelineSwitchpoint', () => {
  const history = parseTimelineHistory(HISTORY_3, 3);
  it('returns where an ancestor ended and null for the open timeline', () => {
    expect(formatLsn(timelineSwitchpoint(history, 1)!)).toBe('0/3000060');
    expect(formatLsn(timelineSwitchpoint(history, 2)!)).toBe('0/5000108');
    expect(timelineSwitchpoint(history, 3)).toBeNull();
  });
  it('throws for a timeline not on the branch', () => {
    expect(() => timelineSwitchpoint(history, 7)).toThrow(/not an ancestor/);
  });
});

describe('timelineHistoryFileName', () => {
  it.each([
    [1, '00000001.history'],
    [26, '0000001A.history'],
    [0xffffffff, 'FFFFFFFF.history'],
  ])('%i → %s', (tli, name) => {
    expect(timelineHistoryFileName(tli)).toBe(name);
  });
  it('rejects timeline 0', () => {
    expect(() => timelineHistoryFileName(0)).toThrow(TimelineHistoryError);
  });
});
