import { describe, expect, it } from 'vitest';
import {
  decideServerWatch,
  INITIAL_SERVER_WATCH,
  observeHandshake,
  type ServerWatchFacts,
} from './server-watch-decision.js';

const policy = { fenceAfterMs: 1000, tickMs: 100 };
const answeredAt = (at: number) => observeHandshake(INITIAL_SERVER_WATCH, { answered: true }, at);
const facts = (over: Partial<ServerWatchFacts> = {}): ServerWatchFacts => ({
  now: 10_000,
  guarding: true,
  lastPrimaryAt: 9_950,
  watch: answeredAt(9_990),
  sinceLastTickMs: 100,
  ...over,
});
const silentFrom = (answer: number, silentAt: number) =>
  observeHandshake(answeredAt(answer), { answered: false, reason: 'no answer within 100 ms' }, silentAt);

describe('decideServerWatch', () => {
  it.each<[string, Partial<ServerWatchFacts>, string, RegExp | null]>([
    ['answers: fine', {}, 'ok', null],
    [
      'not guarding (standby, fenced, paused): nothing to do',
      { guarding: false, watch: silentFrom(0, 100) },
      'ok',
      null,
    ],
    [
      'silent for less than fenceAfter: /primary must stop, nothing more',
      { watch: silentFrom(9_500, 9_700) },
      'suspect',
      /answered no new connection for 500ms \(no answer within 100 ms\)/,
    ],
    [
      'silent for fenceAfter, counted from the last answer (the loop’s own session still works)',
      { watch: silentFrom(9_000, 9_100), lastPrimaryAt: 9_990 },
      'stop',
      /for 1s .*≥ fenceAfter 1s: its sessions may still commit/,
    ],
    [
      'crash recovery shorter than fenceAfter: ridden out',
      { downCause: 'crash_recovery', lastPrimaryAt: 9_500 },
      'suspect',
      /not served as primary for 500ms \(crash recovery\)/,
    ],
    [
      'crash recovery longer than fenceAfter: it must not come back as a second primary',
      { downCause: 'crash_recovery', lastPrimaryAt: 8_900 },
      'stop',
      /must not come back as a second primary/,
    ],
    [
      'a clean shutdown is the operator’s: not stopped',
      { downCause: 'shutting_down', lastPrimaryAt: 1_000 },
      'ok',
      null,
    ],
    [
      'the keeper itself did not run for fenceAfter (host frozen): stop vouching, look at the peer at once',
      { sinceLastTickMs: 1_500 },
      'recheck',
      /did not run for 1.5s .*the standby may have been promoted meanwhile/,
    ],
    ['a short hiccup of the keeper is no stall', { sinceLastTickMs: 250 }, 'ok', null],
  ])('%s', (_name, over, kind, reason) => {
    const v = decideServerWatch(facts(over), policy);
    expect(v.kind).toBe(kind);
    if (reason) expect('reason' in v ? v.reason : '').toMatch(reason);
  });

  it('an answer ends the silence', () => {
    const w = observeHandshake(silentFrom(0, 100), { answered: true }, 200);
    expect(w).toMatchObject({ lastAnswerAt: 200, silentSince: null });
    expect(decideServerWatch(facts({ watch: w, now: 250 }), policy).kind).toBe('ok');
  });
});
