import { type Lsn, parseLsn } from '@pgfleet/wal';
import { describe, expect, it } from 'vitest';
import { StandbyAckBound, safeRemote } from './ack-bound.js';

const l = (s: string) => parseLsn(s) as Lsn;
const s = (remote: string, local: string) => ({ remote: l(remote), local: l(local) });

describe('acks bounded by the target standby', () => {
  it.each<[string, Array<ReturnType<typeof s>>, string | null, string | null, string | null]>([
    ['standby flush unknown: nothing new', [s('0/100', '1/10')], null, null, null],
    ['standby has the sample: its remote', [s('0/100', '1/10')], '1/10', null, '0/100'],
    ['standby short of the sample: the previous', [s('0/100', '1/10')], '1/0F', '0/80', '0/80'],
    [
      'the newest sample the standby holds',
      [s('0/100', '1/10'), s('0/200', '1/20'), s('0/300', '1/30')],
      '1/25',
      null,
      '0/200',
    ],
    ['never lower than before', [s('0/100', '1/10')], '1/10', '0/180', '0/180'],
  ])('%s', (_w, samples, flush, prev, want) => {
    const got = safeRemote(samples, flush === null ? null : l(flush), prev === null ? null : l(prev));
    expect(got).toBe(want === null ? null : l(want));
  });

  it('keeps samples until the standby passes them, then forgets them', () => {
    const b = new StandbyAckBound();
    expect(b.update(s('0/100', '1/10'), l('1/00'))).toBeNull();
    expect(b.update(s('0/200', '1/20'), l('1/05'))).toBeNull();
    // The standby caught up with the first sample only: ack its remote, not the newer one.
    expect(b.update(s('0/300', '1/30'), l('1/15'))).toBe(l('0/100'));
    expect(b.update(null, l('1/30'))).toBe(l('0/300'));
    // Idle edge: the same sample again, standby long past it.
    expect(b.update(s('0/300', '1/30'), l('2/00'))).toBe(l('0/300'));
  });
});
