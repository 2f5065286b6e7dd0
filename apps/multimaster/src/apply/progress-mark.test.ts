import { parseLsn } from '@pgfleet/wal';
import { describe, expect, it } from 'vitest';
import { originRewind, type WitnessStatus } from './progress-mark.js';

const L = parseLsn;

describe('originRewind: where a session taking an origin puts it, from the witness', () => {
  const cases: Array<[string, string, string | null, WitnessStatus, string | null]> = [
    ['last namer committed: origin is right', '0/C000', '0/B000', 'committed', null],
    ['no witness yet (new origin)', '0/C000', null, null, null],
    ['xid too old to tell: taken as committed', '0/C000', '0/B000', null, null],
    [
      'last namer aborted after naming its end: back to the progress before it',
      '0/C000',
      '0/B000',
      'aborted',
      '0/B000',
    ],
    ['last namer aborted before naming its end: origin already there', '0/B000', '0/B000', 'aborted', null],
    ['origin dropped and created again behind the witness: left alone', '0/0', '0/B000', 'aborted', null],
    ['in progress is not a rewind (the caller waits)', '0/C000', '0/B000', 'in progress', null],
  ];
  it.each(cases)('%s', (_name, at, witnessed, status, want) => {
    expect(originRewind(L(at), witnessed === null ? null : L(witnessed), status)).toEqual(
      want === null ? null : L(want),
    );
  });
});
