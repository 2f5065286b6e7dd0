import type { Lsn } from '@pgfleet/wal';
import { describe, expect, it } from 'vitest';
import { type AckFacts, ackPosition } from './ack.js';

const l = (n: number) => BigInt(n) as Lsn;
const base: AckFacts = {
  durable: l(100),
  lastApplied: l(100),
  lastHandled: l(100),
  inFlight: false,
  keepalive: null,
  previous: l(0),
};

describe('ackPosition', () => {
  const cases: Array<[string, Partial<AckFacts>, number]> = [
    ['reports the durable applied position', {}, 100],
    [
      'never beyond what is durable on the target',
      { lastApplied: l(200), lastHandled: l(200), durable: l(150) },
      150,
    ],
    [
      'skipped transactions after the last applied one are acked when idle and durable',
      { lastHandled: l(300) },
      300,
    ],
    [
      'skipped transactions are not acked while something is in flight',
      { lastHandled: l(300), inFlight: true },
      100,
    ],
    ['keepalive acked only when nothing is in flight', { keepalive: l(500) }, 500],
    ['keepalive ignored while a transaction is in flight', { keepalive: l(500), inFlight: true }, 100],
    [
      'keepalive ignored while an applied commit is not yet durable',
      { keepalive: l(500), lastApplied: l(120), lastHandled: l(120) },
      100,
    ],
    ['never goes backwards', { previous: l(400) }, 400],
  ];
  it.each(cases)('%s', (_n, facts, want) => {
    expect(ackPosition({ ...base, ...facts })).toBe(l(want));
  });
});
