import { describe, expect, it } from 'vitest';
import { decideRejoin, type NodeFacts, type RejoinFacts } from './rejoin-decision.js';

const primary = (timeline: number, fenced = false): NodeFacts => ({
  role: 'primary',
  fenced,
  timeline,
  reason: 'up',
});
const standby: NodeFacts = { role: 'standby', fenced: false, timeline: 2, reason: 'in recovery' };
const down: NodeFacts = { role: 'down', fenced: false, timeline: null, reason: 'connection refused' };
const found = { found: true as const, path: '/usr/lib/postgresql/15/bin/pg_rewind' };
const missing = {
  found: false as const,
  reason: 'pg_rewind not found: rebuild the standby with pg_basebackup',
};

function facts(over: Partial<RejoinFacts>): RejoinFacts {
  return { node: 'a', peer: 'b', local: down, remote: primary(2), rewind: found, force: false, ...over };
}

describe('decideRejoin', () => {
  it.each<[string, Partial<RejoinFacts>, string, RegExp]>([
    [
      'crashed old primary, peer promoted',
      {},
      'rejoin',
      /rejoining a as a standby of b \(timeline 2\): pg_rewind/,
    ],
    ['fenced old primary still running', { local: primary(1, true) }, 'rejoin', /stop the server, pg_rewind/],
    [
      'peer down',
      { remote: down },
      'refuse',
      /peer b is down \(connection refused\): rejoin needs a running primary/,
    ],
    ['peer is a standby', { remote: standby }, 'refuse', /peer b is standby/],
    ['peer fenced', { remote: primary(2, true) }, 'refuse', /peer b is a fenced primary/],
    ['already a standby', { local: standby }, 'nothing', /a is already a standby/],
    [
      'already a standby, even without pg_rewind',
      { local: standby, rewind: missing },
      'nothing',
      /already a standby/,
    ],
    ['local on the same timeline', { local: primary(2, true) }, 'refuse', /timeline 2, peer b timeline 2/],
    [
      'local on a newer timeline',
      { local: primary(3, true), force: true },
      'refuse',
      /not the newer primary/,
    ],
    ['unfenced primary', { local: primary(1) }, 'refuse', /unfenced primary .* --force/],
    ['unfenced primary with --force', { local: primary(1), force: true }, 'rejoin', /stop the server/],
    [
      'no pg_rewind',
      { rewind: missing },
      'refuse',
      /^pg_rewind not found: rebuild the standby with pg_basebackup/,
    ],
  ])('%s → %s', (_name, over, kind, reason) => {
    const plan = decideRejoin(facts(over));
    expect(plan.kind).toBe(kind);
    expect(plan.reason).toMatch(reason);
  });

  it('stops the local server only when it runs', () => {
    expect(decideRejoin(facts({}))).toMatchObject({ kind: 'rejoin', stopLocal: false });
    expect(decideRejoin(facts({ local: primary(1, true) }))).toMatchObject({
      kind: 'rejoin',
      stopLocal: true,
    });
  });
});
