import { connect } from '@pgfleet/connection';
import { Sandbox, type SandboxNode } from '@pgfleet/sandbox';
import type pg from 'pg';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setUpOrigin } from '../apply/progress-mark.js';
import { createTestMetadata } from '../metadata-test-support.js';
import { holdOrigins } from './origin-hold.js';

const ORIGIN = 'pgfleet_x';

/**
 * What a replicator does while add-node pauses its edge: its apply session is ended, and it
 * sets the origin up again as fast as it can (here every 2 ms, faster than any real
 * backoff). Counts the times it got the origin.
 */
function startEagerApplier(node: SandboxNode) {
  let stopped = false;
  let taken = 0;
  let current: pg.Client | null = null;
  const loop = (async () => {
    while (!stopped) {
      const db = await connect(node.conninfo());
      db.on('error', () => {});
      current = db;
      try {
        await setUpOrigin(db, ORIGIN, { timeoutMs: 60_000 });
        taken++;
        // Holds the origin like an idle apply session until it is ended.
        while (!stopped) await db.query('SELECT pg_sleep(0.002)');
      } catch {
        // Ended by the hold, or gave up: connect again at once.
      } finally {
        await db.end().catch(() => {});
      }
    }
  })();
  return {
    get taken() {
      return taken;
    },
    async stop() {
      stopped = true;
      await current?.end().catch(() => {});
      await loop;
    },
  };
}

describe('holdOrigins: pausing an apply session a replicator restarts at once', () => {
  let sb: Sandbox;
  let node: SandboxNode;

  beforeAll(async () => {
    sb = await Sandbox.create();
    [node] = (await sb.startLogicalNodes(['a'])) as [SandboxNode];
    const db = await connect(node.conninfo());
    try {
      await createTestMetadata(db);
      await db.query('SELECT pg_replication_origin_create($1)', [ORIGIN]);
    } finally {
      await db.end();
    }
  });
  afterAll(async () => {
    await sb?.destroy();
  });

  it('ends the holder once and keeps the origin: the replicator never takes it back in between', async () => {
    const pauses: number[] = [];
    const log = pino(
      { level: 'info' },
      {
        write: (line: string) => {
          const entry = JSON.parse(line) as { msg: string; pid?: number };
          if (entry.msg === 'pausing apply session that holds the origin') pauses.push(entry.pid as number);
        },
      },
    );
    for (let round = 0; round < 10; round++) {
      const applier = startEagerApplier(node);
      const started = Date.now();
      while (applier.taken === 0) {
        if (Date.now() - started > 10_000) throw new Error('the applier never took the origin');
        await new Promise((r) => setTimeout(r, 5));
      }
      pauses.length = 0;
      const hold = await holdOrigins(node.conninfo(), [ORIGIN], { timeoutMs: 10_000, logger: log });
      try {
        // Give the applier time to try: it waits at the origin's gate, then finds it in use.
        await new Promise((r) => setTimeout(r, 100));
        expect({ round, pauses: pauses.length, taken: applier.taken }).toEqual({
          round,
          pauses: 1,
          taken: 1,
        });
        const held = await hold.sessions
          .get(ORIGIN)
          ?.query('SELECT pg_replication_origin_session_is_setup() AS yes');
        expect(held?.rows[0]?.yes, 'the hold has the origin').toBe(true);
      } finally {
        await hold.release();
        await applier.stop();
      }
    }
  });
});
