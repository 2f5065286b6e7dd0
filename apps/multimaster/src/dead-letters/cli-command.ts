import type { Logger } from 'pino';
import type { ResolvedConfig } from '../config.js';
import { listDeadLetters } from './list.js';
import { parseDeadLetterRef, ReplayError, replayDeadLetter } from './replay.js';

/** Same numbers as cli.ts EXIT: 0 ok, 1 failure, 2 usage. */
const OK = 0;
const FAILURE = 1;
const USAGE = 2;

export interface DeadLettersIo {
  out(line: string): void;
  err(line: string): void;
}

export interface DeadLettersArgs {
  node: string | undefined;
  replay: string | undefined;
  all: boolean;
  limit: string | undefined;
  json: boolean;
}

/** `pgfleet-mm dead-letters`: list, or `--replay <node:id>`. */
export async function cmdDeadLetters(
  config: ResolvedConfig,
  args: DeadLettersArgs,
  logger: Logger,
  io: DeadLettersIo,
): Promise<number> {
  if (args.replay !== undefined) {
    const ref = parseDeadLetterRef(args.replay, args.node);
    if (!ref) {
      io.err(
        `pgfleet-mm dead-letters: --replay takes node:id as listed (e.g. --replay b:12), or an id with --node; got "${args.replay}"`,
      );
      return USAGE;
    }
    try {
      const r = await replayDeadLetter(config, ref.node, ref.id, { logger });
      if (args.json) io.out(JSON.stringify(r, null, 2));
      else {
        io.out(
          `replayed ${r.node}:${r.id} (edge ${r.edge}, transaction ${r.commitLsn}): ${r.changes} change(s), ${r.conflicts.length} conflict(s)`,
        );
        for (const c of r.conflicts) io.out(`  ${c.table} ${c.kind} → ${c.resolution}`);
        if (r.laterChangesSkipped > 0)
          io.out(
            `  ${r.laterChangesSkipped} later change(s) of these rows were skipped while this transaction was missing (update_missing/delete_missing in pgfleet.conflicts) and are not re-applied: run pgfleet-mm check`,
          );
      }
      return OK;
    } catch (err) {
      if (err instanceof ReplayError) {
        io.err(`pgfleet-mm dead-letters: ${err.message}`);
        return FAILURE;
      }
      throw err;
    }
  }
  const limit = args.limit === undefined ? 50 : Number(args.limit);
  if (!Number.isInteger(limit) || limit < 1) {
    io.err(`pgfleet-mm dead-letters: --limit must be a positive integer, got "${args.limit}"`);
    return USAGE;
  }
  if (args.node && !config.nodes.some((n) => n.name === args.node)) {
    io.err(`pgfleet-mm dead-letters: no node "${args.node}" in the config`);
    return USAGE;
  }
  const res = await listDeadLetters(config, {
    ...(args.node ? { node: args.node } : {}),
    all: args.all,
    limit,
  });
  if (args.json) io.out(JSON.stringify({ nodes: res }, null, 2));
  else {
    io.out(
      'ID          EDGE        COMMIT_LSN     XID         ACTION               CHANGES  RESOLVED  ERROR',
    );
    for (const n of res) {
      if (n.error) io.out(`${n.node}: ${n.error}`);
      for (const e of n.entries) {
        io.out(
          `${e.ref.padEnd(11)} ${e.edge.padEnd(11)} ${e.commitLsn.padEnd(14)} ${e.xid.padEnd(11)} ${e.action.padEnd(20)} ${String(e.changes).padEnd(8)} ${(e.resolved ?? '-').padEnd(9)} ${e.error}`,
        );
      }
    }
  }
  return res.some((n) => n.error) ? FAILURE : OK;
}
