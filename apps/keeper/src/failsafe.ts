import { errorText, type LoopContext } from './context.js';
import type { ClusterSnapshot } from './dcs/index.js';
import { dcsCall, requireDcs } from './dcs-node.js';
import {
  type FailsafeAnswer,
  failsafeTargets,
  judgeFailsafe,
  judgeFailsafeRequest,
} from './failsafe-decision.js';
import type { PostResult } from './http-server.js';
import type { RenewalOutcome } from './leader-lease-decision.js';
import { postJson } from './peer-client.js';

/**
 * Failsafe mode, the I/O around failsafe-decision.ts: the leader's question to every member
 * when etcd does not answer, a member's answer (POST /failsafe), and the failsafe record the
 * leader keeps in etcd (every member it would ask, with its keeper URL).
 */

/** Failsafe mode on: the cluster-wide config key when set, else this keeper's configuration. */
export function failsafeEnabled(ctx: LoopContext): boolean {
  return ctx.state.dcs.snapshot?.config.failsafeMode ?? ctx.config.cluster.failsafeMode;
}

export interface FailsafeRequest {
  leader: string;
  timeline: number | null;
}

/**
 * etcd did not renew the leader key: asks every member at once, within `timeoutMs`. All
 * confirmed: the key's deadline moves to the send time plus the TTL. Otherwise the etcd error
 * stands, with who did not confirm.
 */
export async function askFailsafe(
  ctx: LoopContext,
  etcdError: string,
  timeoutMs: number,
): Promise<RenewalOutcome> {
  const { config: c, state: s, clock } = ctx;
  const snap = s.dcs.snapshot;
  const targets = failsafeTargets(c.node.name, {
    snapshot: snap?.members ?? [],
    configured: c.cluster.members,
    record: snap?.failsafe ?? null,
  });
  const body: FailsafeRequest = { leader: c.node.name, timeline: s.timeline };
  const sentAt = clock.now();
  const answers = await Promise.all(
    targets.map(async (t): Promise<FailsafeAnswer> => {
      if (!t.url) return { name: t.name, confirmed: false, detail: 'no keeper URL known' };
      try {
        await postJson(`${t.url.replace(/\/+$/, '')}/failsafe`, body, {
          ...(c.http.token ? { token: c.http.token } : {}),
          timeoutMs,
        });
        return { name: t.name, confirmed: true, detail: 'confirmed' };
      } catch (err) {
        return { name: t.name, confirmed: false, detail: errorText(err) };
      }
    }),
  );
  const outcome = judgeFailsafe(answers, sentAt, c.dcs ? c.dcs.etcd.ttlSeconds * 1000 : 0, etcdError);
  if (outcome.kind !== 'held')
    ctx.record(
      'wait',
      `failsafe mode: ${outcome.kind === 'unreachable' ? outcome.error : ''}`,
      {},
      'failsafe-refused',
    );
  return outcome;
}

/**
 * POST /failsafe on any member: answers 200 (and promises not to take the leader key for one
 * TTL from now) unless this member leads, runs a primary, is taking the key, or knows another
 * leader; 409 with the reason otherwise.
 */
export function answerFailsafe(ctx: LoopContext, body: unknown): PostResult {
  const { config: c, state: s, clock } = ctx;
  const req = body as Partial<FailsafeRequest> | null;
  if (!ctx.dcs || !c.dcs)
    return { status: 409, body: { error: 'failsafe mode is for keepers on etcd; this one is not' } };
  if (!req || typeof req.leader !== 'string' || req.leader === '')
    return { status: 400, body: { error: 'expected {"leader": "<member name>"}' } };
  const verdict = judgeFailsafeRequest({
    self: c.node.name,
    leader: req.leader,
    primary: s.role === 'primary' && !s.fenced,
    claiming: s.dcs.claiming,
    keyHolder: s.dcs.snapshot?.leader?.name ?? null,
  });
  if (!verdict.ok) {
    ctx.logger.warn(
      { event: 'failsafe_refused', leader: req.leader },
      `refused to confirm ${req.leader} in failsafe mode: ${verdict.reason}`,
    );
    return { status: 409, body: { confirmed: false, reason: verdict.reason } };
  }
  const until = clock.now() + c.dcs.etcd.ttlSeconds * 1000;
  const first = s.dcs.failsafePromise?.leader !== req.leader || s.dcs.failsafePromise.until <= clock.now();
  s.dcs.failsafePromise = { leader: req.leader, until };
  if (first)
    ctx.logger.warn(
      { event: 'failsafe_confirmed', leader: req.leader },
      `confirmed ${req.leader} as the only primary in failsafe mode: not taking the leader key while it asks`,
    );
  return { status: 200, body: { confirmed: true, member: c.node.name } };
}

/**
 * The leader keeps the failsafe record equal to the members it would ask, itself included
 * (every name with the URL it published or was configured with); with failsafe mode off it
 * empties a record left from before, so that no member is kept from taking the key by it.
 */
export async function keepFailsafeRecord(ctx: LoopContext, snap: ClusterSnapshot): Promise<void> {
  const c = ctx.config;
  const record: Record<string, string> = {};
  if (failsafeEnabled(ctx)) {
    for (const t of failsafeTargets('', {
      snapshot: snap.members,
      configured: c.cluster.members,
      record: null,
    }))
      if (t.url) record[t.name] = t.url;
  }
  if (JSON.stringify(record) === JSON.stringify(snap.failsafe ?? {})) return;
  const dcs = requireDcs(ctx);
  await dcsCall(ctx, 'write failsafe record', () => dcs.writeFailsafe(record, { signal: ctx.signal }));
}
