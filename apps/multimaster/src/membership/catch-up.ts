import { pause, SqlState, sqlStateOf } from '@pgfleet/connection';
import { formatLsn, type Lsn, parseNullableLsn } from '@pgfleet/wal';
import type pg from 'pg';
import { committedProgressSql } from '../apply/progress-mark.js';
import { edgeSlotName, originName } from '../naming.js';
import { type CatchUp, type CatchUpFacts, sourceCaughtUp } from './plan.js';

/**
 * Transactions made on `other` itself that its inactive slot to `source` holds up to
 * `upto`, read with a peek (the slot does not move). Echoes (transactions that carry an
 * Origin message, or that PostgreSQL 16+ drops with origin 'none') do not count: the
 * source gets those from their own nodes. Null when the slot is in use or missing.
 */
async function pendingOwnTransactions(
  otherClient: pg.Client,
  other: string,
  source: string,
  upto: Lsn,
  version: number,
): Promise<number | null> {
  const slot = edgeSlotName(other, source);
  const { rows: st } = await otherClient.query(
    'SELECT active FROM pg_replication_slots WHERE slot_name = $1',
    [slot],
  );
  if (!st[0] || st[0].active) return null;
  const originOpt = version >= 160000 ? `, 'origin', 'none'` : '';
  try {
    // Only the first byte of each pgoutput message: B(egin), O(rigin), C(ommit), ...
    const { rows } = await otherClient.query(
      `SELECT get_byte(data, 0) AS t FROM pg_logical_slot_peek_binary_changes($1, $2::pg_lsn, NULL,
         'proto_version', '1', 'publication_names', $3${originOpt})`,
      [slot, formatLsn(upto), slot],
    );
    let own = 0;
    let inTx = false;
    let echo = false;
    for (const r of rows) {
      const t = String.fromCharCode(r.t as number);
      if (t === 'B') {
        inTx = true;
        echo = false;
      } else if (t === 'O') echo = true;
      else if (t === 'C') {
        if (inTx && !echo) own++;
        inTx = false;
      }
    }
    return own;
  } catch (err) {
    // Someone (the replicator) took the slot between our look and the peek.
    if (sqlStateOf(err) === SqlState.OBJECT_IN_USE) return null;
    throw err;
  }
}

export interface CatchUpWait {
  other: string;
  source: string;
  slotStart: Lsn;
  sourceClient: pg.Client;
  otherClient: pg.Client;
  timeoutMs: number;
  signal?: AbortSignal;
}

/**
 * Waits until the copy source holds every change `other` made before the slot other → new
 * began (see sourceCaughtUp). With `pgfleet-mm run` running this is one apply lag; on a
 * stopped mesh the peek proves nothing is pending. Returns the last verdict on timeout.
 */
export async function waitSourceCaughtUp(w: CatchUpWait): Promise<CatchUp> {
  const deadline = Date.now() + w.timeoutMs;
  const { rows: v } = await w.otherClient.query(`SELECT current_setting('server_version_num')::int AS v`);
  let verdict: CatchUp = { ok: false, reason: 'not checked' };
  let lastPeek = 0;
  // Pending transactions before slotStart only ever decrease, so an older count stays true enough to report.
  let lastPending: number | null = null;
  for (;;) {
    w.signal?.throwIfAborted();
    const { rows: o } = await w.sourceClient.query(
      // Origin progress may name a transaction that did not commit; its row says what did.
      `SELECT nullif(${committedProgressSql('$1', true)}, '0/0')::text AS lsn`,
      [originName(w.other)],
    );
    const { rows: s } = await w.otherClient.query(
      'SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = $1',
      [edgeSlotName(w.other, w.source)],
    );
    const facts: CatchUpFacts = {
      slotStart: w.slotStart,
      originProgress: parseNullableLsn(o[0]?.lsn ?? null),
      confirmedFlush: parseNullableLsn(s[0]?.lsn ?? null),
      pendingOwnTransactions: lastPending,
    };
    verdict = sourceCaughtUp(facts);
    if (verdict.ok) return verdict;
    // Peek once per second at most: it decodes the slot's whole backlog.
    if (Date.now() - lastPeek >= 1000) {
      lastPending = await pendingOwnTransactions(w.otherClient, w.other, w.source, w.slotStart, v[0].v);
      facts.pendingOwnTransactions = lastPending;
      lastPeek = Date.now();
      verdict = sourceCaughtUp(facts);
      if (verdict.ok) return verdict;
    }
    if (Date.now() > deadline) return verdict;
    await pause(100);
  }
}
