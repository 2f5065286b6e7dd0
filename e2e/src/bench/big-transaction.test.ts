import { describe, expect, it } from 'vitest';
import { parseProcStatus } from './big-transaction.js';

const STATUS = `Name:\tnode
Umask:\t0022
State:\tS (sleeping)
VmPeak:\t 1234567 kB
VmSize:\t 1200000 kB
VmHWM:\t  230400 kB
VmRSS:\t  180224 kB
RssAnon:\t  150000 kB
Threads:\t11
`;

describe('parseProcStatus', () => {
  it.each([
    ['a live process', STATUS, { hwmKb: 230400, rssKb: 180224 }],
    ['a zombie (no memory lines)', 'Name:\tnode\nState:\tZ (zombie)\n', null],
    ['VmHWM without VmRSS', 'VmHWM:\t 10 kB\n', null],
    ['VmPeak is not mistaken for VmHWM', 'VmPeak:\t 99 kB\nVmRSS:\t 5 kB\n', null],
  ])('reads %s', (_what, text, expected) => {
    expect(parseProcStatus(text)).toEqual(expected);
  });
});
