import { describe, expect, it } from 'vitest';
import { type DeadLetterFacts, decideDeadLetter } from './dead-letter.js';

const base: DeadLetterFacts = {
  policy: 'pause_edge',
  skipRequested: false,
  transient: false,
  schemaMismatch: false,
};

describe('decideDeadLetter', () => {
  const cases: Array<[string, Partial<DeadLetterFacts>, ReturnType<typeof decideDeadLetter>]> = [
    ['pause_edge pauses and records', {}, { action: 'pause', record: true }],
    ['discard drops only the failing change', { policy: 'discard' }, { action: 'skip_change', record: true }],
    [
      'skip_transaction drops the transaction',
      { policy: 'skip_transaction' },
      { action: 'skip_transaction', record: true },
    ],
    [
      'an operator skip request wins over pause_edge',
      { skipRequested: true },
      { action: 'skip_transaction', record: true },
    ],
    ['transient failures are retried, never dead-lettered', { policy: 'discard', transient: true }, 'retry'],
    [
      'schema mismatch pauses even under discard',
      { policy: 'discard', schemaMismatch: true },
      { action: 'pause', record: false },
    ],
  ];
  it.each(cases)('%s', (_n, facts, want) => {
    expect(decideDeadLetter({ ...base, ...facts })).toEqual(want);
  });
});
