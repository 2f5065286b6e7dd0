import type { SandboxNode } from '@pgfleet/sandbox';
import pg from 'pg';

/**
 * Would spreading small transactions over two apply sessions pay? Measured on one server with
 * nothing else running (the best case for two sessions): `transactions` one-row UPDATE
 * transactions, each leaving the two-`setval` witness the apply leaves and committing on its
 * own with `synchronous_commit = off`, as the apply does.
 *
 * - `serial`: one session, in order (what pgfleet and PostgreSQL's apply worker do).
 * - `ordered`: two sessions taking turns, each transaction committing only after the one
 *   before it in source order. That is what keeps origin progress a prefix of the stream
 *   (the exactly-once argument). A session holds an advisory lock on its transaction's number
 *   until that transaction has committed; before COMMIT it takes the lock of its own next
 *   number, then waits for its predecessor's. Both sessions hold their first number before
 *   either starts, so no wait can be missed.
 * - `unordered`: two sessions taking turns, committing in any order, with nothing more: a
 *   bound, since progress would then no longer be a prefix of the stream.
 * - `ledger`: the same, with what exactly once then needs: each transaction inserts its
 *   number (its source end LSN) into a ledger, which a restart would read to skip it.
 */
export type CommitMode = 'serial' | 'ordered' | 'unordered' | 'ledger';

export const COMMIT_MODES: readonly CommitMode[] = ['serial', 'ordered', 'unordered', 'ledger'];

const SCHEMA = 'bench_parallel_commit';

/** Lock class of the advisory locks (the first key); the transaction number is the second. */
const LOCK_CLASS = 7301;

const SETUP = `
CREATE SCHEMA IF NOT EXISTS ${SCHEMA};
CREATE TABLE IF NOT EXISTS ${SCHEMA}.rows (id integer PRIMARY KEY, n integer NOT NULL, payload text NOT NULL);
CREATE SEQUENCE IF NOT EXISTS ${SCHEMA}.witness_lsn;
CREATE SEQUENCE IF NOT EXISTS ${SCHEMA}.witness_xid;
CREATE TABLE IF NOT EXISTS ${SCHEMA}.ledger (end_lsn bigint PRIMARY KEY);
CREATE OR REPLACE PROCEDURE ${SCHEMA}.apply(lo integer, hi integer, step integer, ordered boolean, ledger boolean)
LANGUAGE plpgsql AS $$
DECLARE i integer := lo; v boolean;
BEGIN
  WHILE i <= hi LOOP
    UPDATE ${SCHEMA}.rows SET n = n + 1 WHERE id = i;
    v := setval('${SCHEMA}.witness_lsn', i + 1) IS NULL;
    v := setval('${SCHEMA}.witness_xid', txid_current()) IS NULL;
    IF ledger THEN INSERT INTO ${SCHEMA}.ledger VALUES (i); END IF;
    IF ordered THEN
      PERFORM pg_advisory_lock(${LOCK_CLASS}, i + step);
      IF i > 0 THEN
        PERFORM pg_advisory_lock_shared(${LOCK_CLASS}, i - 1);
        PERFORM pg_advisory_unlock_shared(${LOCK_CLASS}, i - 1);
      END IF;
    END IF;
    COMMIT;
    IF ordered THEN PERFORM pg_advisory_unlock(${LOCK_CLASS}, i); END IF;
    i := i + step;
  END LOOP;
  PERFORM pg_advisory_unlock_all();
END $$;
`;

async function session(node: SandboxNode): Promise<pg.Client> {
  const c = new pg.Client({ ...node.facts(), statement_timeout: 120_000 });
  await c.connect();
  await c.query('SET synchronous_commit = off');
  return c;
}

/** Seconds to apply `transactions` transactions (numbered 0..n-1) in `mode`. */
export async function applyTransactions(
  node: SandboxNode,
  transactions: number,
  mode: CommitMode,
): Promise<number> {
  await node.query(SETUP);
  await node.query(`TRUNCATE ${SCHEMA}.rows, ${SCHEMA}.ledger`);
  await node.query(
    `INSERT INTO ${SCHEMA}.rows SELECT g, 0, md5(g::text) FROM generate_series(0, $1::int - 1) g`,
    [transactions],
  );
  await node.query(`VACUUM ANALYZE ${SCHEMA}.rows`);
  const last = transactions - 1;
  const sessions = await Promise.all(mode === 'serial' ? [session(node)] : [session(node), session(node)]);
  try {
    const step = sessions.length;
    const ordered = mode === 'ordered';
    if (ordered) {
      await Promise.all(sessions.map((c, s) => c.query('SELECT pg_advisory_lock($1, $2)', [LOCK_CLASS, s])));
    }
    const t0 = process.hrtime.bigint();
    await Promise.all(
      sessions.map((c, s) =>
        c.query(`CALL ${SCHEMA}.apply($1, $2, $3, $4, $5)`, [s, last, step, ordered, mode === 'ledger']),
      ),
    );
    return Number(process.hrtime.bigint() - t0) / 1e9;
  } finally {
    await Promise.all(sessions.map((c) => c.end().catch(() => {})));
  }
}

/**
 * Whether the transactions committed in their numbers' order: each row's commit time (of the
 * transaction that last updated it) is not before the one of the row numbered before it.
 * Needs track_commit_timestamp.
 */
export async function committedInOrder(
  node: SandboxNode,
): Promise<{ inOrder: boolean; updated: number; ledgerRows: number }> {
  const [r] = await node.query<{ in_order: boolean; updated: string; ledger_rows: string }>(
    `SELECT coalesce(bool_and(ts >= prev), true) AS in_order, count(*) FILTER (WHERE n = 1) AS updated,
            (SELECT count(*) FROM ${SCHEMA}.ledger) AS ledger_rows
       FROM (SELECT n, pg_xact_commit_timestamp(xmin) AS ts,
                    lag(pg_xact_commit_timestamp(xmin)) OVER (ORDER BY id) AS prev
               FROM ${SCHEMA}.rows) x`,
  );
  return {
    inOrder: r?.in_order === true,
    updated: Number(r?.updated ?? 0),
    ledgerRows: Number(r?.ledger_rows ?? 0),
  };
}

export async function dropParallelCommitObjects(node: SandboxNode): Promise<void> {
  await node.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`);
}
