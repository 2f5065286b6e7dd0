import { quoteIdent, quoteQualified } from '@pgfleet/connection';
import type { Lsn } from '@pgfleet/wal';
import { applyChangeCarefully, type CarefulApplyContext } from '../apply/careful-change.js';
import { ConflictError } from '../apply/errors.js';
import { type ApplyTable, lookupStatement } from '../apply/statements.js';
import { sqlMicros } from '../pg-time.js';
import { resyncAction, type WindowRow } from './resync-plan.js';

/** Per window transaction: how its rows ended on the peer. */
export interface RowOutcomes {
  applied: number;
  skipped: number;
  failed: number;
}

/**
 * The careful apply's context for a re-sync. `ownOriginIds`: the origins through which the
 * source's own changes arrive on the peer (its edge, `dead-letters --replay`); a peer row
 * last changed through them is the source's own older version. The source's view of
 * other nodes' rows when it wrote a window transaction is not known here, so `seen`
 * answers from these origins alone: any other row version is a conflict for the policy.
 */
export interface ResyncApplyContext extends CarefulApplyContext {
  ownOriginIds: ReadonlySet<number>;
}

function col(t: ApplyTable, i: number) {
  const c = t.columns[i];
  if (!c) throw new RangeError(`column ${i} of ${t.schema}.${t.name}`);
  return c;
}

/**
 * What the peer holds for each key of `rows`: commit timestamp and origin of the row's last
 * change, by position in `rows`. One round trip; no lock (only rows that need more than an
 * insert go on to the careful path, which locks).
 */
async function peerVersions(
  ctx: ResyncApplyContext,
  t: ApplyTable,
  rows: WindowRow[],
): Promise<Map<number, { commitUs: bigint | null; roident: number | null }>> {
  const keys = t.keyIndexes;
  const names = [...keys.map((_, j) => `k${j}`), 'ord'];
  const arrays = [...keys.map((_, j) => `$${j + 1}::text[]`), `$${keys.length + 1}::int[]`];
  const casts = [...keys.map((ci, j) => `k${j}::${col(t, ci).type} AS k${j}`), 'ord'];
  const on = keys.map((ci, j) => `t.${quoteIdent(col(t, ci).name)} = v.k${j}`).join(' AND ');
  const { rows: found } = await ctx.db.query(
    `WITH v AS (SELECT ${casts.join(', ')} FROM unnest(${arrays.join(', ')}) AS u(${names.join(', ')}))
     SELECT v.ord, ${sqlMicros('c.timestamp')}::text AS commit_us, c.roident::int8 AS roident
       FROM v JOIN ONLY ${quoteQualified(t.schema, t.name)} AS t ON ${on}
       CROSS JOIN LATERAL pg_xact_commit_timestamp_origin(t.xmin) AS c`,
    [...keys.map((ci) => rows.map((r) => r.values[ci] ?? null)), rows.map((_, i) => i)],
  );
  return new Map(
    found.map((r) => [
      Number(r.ord),
      {
        commitUs: r.commit_us === null ? null : BigInt(r.commit_us as string),
        roident: r.roident === null ? null : Number(r.roident),
      },
    ]),
  );
}

/**
 * Inserts rows whose key the peer lacks, in one statement; returns how many it inserted
 * (fewer when a local insert of the same key won the race: the careful path sorts it out).
 */
async function insertMissing(ctx: ResyncApplyContext, t: ApplyTable, rows: WindowRow[]): Promise<number> {
  const idx = t.columns.map((_, i) => i);
  const names = idx.map((i) => `c${i}`);
  const arrays = idx.map((i) => `$${i + 1}::text[]`);
  const cols = idx.map((i) => quoteIdent(col(t, i).name)).join(', ');
  const keys = t.keyIndexes.map((i) => quoteIdent(col(t, i).name)).join(', ');
  const res = await ctx.db.query(
    `INSERT INTO ${quoteQualified(t.schema, t.name)} (${cols}) OVERRIDING SYSTEM VALUE
     SELECT ${idx.map((i) => `u.c${i}::${col(t, i).type}`).join(', ')} FROM unnest(${arrays.join(', ')}) AS u(${names.join(', ')})
     ON CONFLICT (${keys}) DO NOTHING`,
    idx.map((i) => rows.map((r) => r.values[i] ?? null)),
  );
  return res.rowCount ?? 0;
}

/**
 * Applies the rows of one window transaction of one table on the peer (inside the
 * transaction, origin set up): keys the peer lacks in one set-based insert; versions it
 * already has skipped; the rest row by row on the careful path (conflicts detected,
 * resolved by the table's policy and recorded exactly as the stream does).
 */
export async function applyWindowRows(
  ctx: ResyncApplyContext,
  t: ApplyTable,
  rows: WindowRow[],
  tx: { finalLsn: Lsn; commitTs: bigint; xid: number },
): Promise<RowOutcomes> {
  const out: RowOutcomes = { applied: 0, skipped: 0, failed: 0 };
  const careful: WindowRow[] = [];
  if (t.identityFull) careful.push(...rows);
  else {
    const versions = await peerVersions(ctx, t, rows);
    const missing: WindowRow[] = [];
    rows.forEach((r, i) => {
      const v = versions.get(i);
      const peer = v
        ? { own: v.roident !== null && ctx.ownOriginIds.has(v.roident), commitTs: v.commitUs }
        : null;
      const action = resyncAction(peer, tx.commitTs);
      if (action === 'skip') out.skipped++;
      else if (action === 'insert' && peer === null) missing.push(r);
      else careful.push(r);
    });
    if (missing.length > 0) {
      await ctx.db.query('SAVEPOINT pgfleet_batch');
      try {
        const inserted = await insertMissing(ctx, t, missing);
        await ctx.db.query('RELEASE SAVEPOINT pgfleet_batch');
        // Fewer: look at each again; those this transaction inserted are found as its own.
        if (inserted === missing.length) out.applied += inserted;
        else careful.push(...missing);
      } catch {
        // A constraint refused one of them: find which, row by row.
        await ctx.db.query('ROLLBACK TO SAVEPOINT pgfleet_batch');
        careful.push(...missing);
      }
    }
  }
  for (const r of careful) {
    const o = await applyRowCarefully(ctx, t, r, tx);
    out[o]++;
  }
  return out;
}

/**
 * One row on the careful path under a savepoint: a row the peer refuses (a constraint) is
 * counted and logged, not allowed to stop the others.
 */
async function applyRowCarefully(
  ctx: ResyncApplyContext,
  t: ApplyTable,
  row: WindowRow,
  tx: { finalLsn: Lsn; commitTs: bigint; xid: number },
): Promise<keyof RowOutcomes> {
  const key = t.keyIndexes.map((i) => row.values[i] ?? null);
  await ctx.db.query('SAVEPOINT pgfleet_row');
  try {
    const { rows } = await ctx.db.query(lookupStatement(t), key);
    const local = rows[0] as { commit_us: string | null; roident: string | null; mine: boolean } | undefined;
    if (local?.mine) {
      // Inserted by this transaction's batch.
      await ctx.db.query('RELEASE SAVEPOINT pgfleet_row');
      return 'applied';
    }
    const peer = local
      ? {
          own: local.mine || (local.roident !== null && ctx.ownOriginIds.has(Number(local.roident))),
          commitTs: local.commit_us === null ? null : BigInt(local.commit_us),
        }
      : null;
    const action = resyncAction(peer, tx.commitTs);
    if (action === 'skip') {
      await ctx.db.query('RELEASE SAVEPOINT pgfleet_row');
      return 'skipped';
    }
    const tuple = [...row.values];
    await applyChangeCarefully(
      ctx,
      tx,
      t,
      action === 'insert'
        ? { tag: 'insert', relationId: 0, newTuple: tuple }
        : { tag: 'update', relationId: 0, key: null, old: null, newTuple: tuple },
    );
    await ctx.db.query('RELEASE SAVEPOINT pgfleet_row');
    return 'applied';
  } catch (err) {
    await ctx.db.query('ROLLBACK TO SAVEPOINT pgfleet_row');
    if (err instanceof ConflictError) return 'skipped';
    ctx.logger.error(
      { table: `${t.schema}.${t.name}`, key, err: (err as Error).message },
      're-sync: the peer refused a row; run pgfleet-mm check and repair it',
    );
    return 'failed';
  }
}
