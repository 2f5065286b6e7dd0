import { Sandbox, type SandboxNode } from '@pgfleet/sandbox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyTransactions, committedInOrder, dropParallelCommitObjects } from './parallel-commit.js';

// The bench's ordered mode must commit in the transactions' order, or its figure would price
// a protocol that does not keep origin progress a prefix of the stream.
describe('parallel-commit bench: two apply sessions', () => {
  let sb: Sandbox;
  let node: SandboxNode;

  beforeAll(async () => {
    sb = await Sandbox.create({ name: 'e2e-parallel-commit' });
    [node] = (await sb.startLogicalNodes(['a'])) as [SandboxNode];
  });

  afterAll(async () => {
    await sb?.destroy();
  });

  it('the order check sees two commits reversed', async () => {
    await applyTransactions(node, 2, 'serial');
    // Row 1 is updated (and committed) before row 0: row 0's commit time is now the later one.
    await node.query('UPDATE bench_parallel_commit.rows SET n = n + 1 WHERE id = 1');
    await node.query('UPDATE bench_parallel_commit.rows SET n = n + 1 WHERE id = 0');
    expect(await committedInOrder(node)).toEqual({ inOrder: false, updated: 0, ledgerRows: 0 });
  });

  it('ordered: every transaction applied once, committed in source order', async () => {
    await applyTransactions(node, 2_000, 'ordered');
    expect(await committedInOrder(node)).toEqual({ inOrder: true, updated: 2_000, ledgerRows: 0 });
    const locks = await node.query<{ n: string }>(
      `SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory'`,
    );
    expect(Number(locks[0]?.n)).toBe(0);
  });

  it('unordered, ledger and serial apply every transaction once; only ledger records them', async () => {
    for (const mode of ['unordered', 'ledger', 'serial'] as const) {
      await applyTransactions(node, 1_000, mode);
      const r = await committedInOrder(node);
      expect([r.updated, r.ledgerRows]).toEqual([1_000, mode === 'ledger' ? 1_000 : 0]);
    }
    await dropParallelCommitObjects(node);
    const left = await node.query(`SELECT 1 FROM pg_namespace WHERE nspname = 'bench_parallel_commit'`);
    expect(left).toHaveLength(0);
  });
});
