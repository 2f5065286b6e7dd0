import type { Logger } from 'pino';
import type { ResolvedConfig } from '../config.js';
import { type AddNodeProgress, addNode } from './add-node.js';
import { MembershipError } from './errors.js';
import { removeNode } from './remove-node.js';
import { sequenceOffsets } from './sequences.js';

/** Same numbers as cli-main.ts EXIT: 0 ok, 1 failure, 2 usage, 3 preconditions not met (nothing changed). */
const OK = 0;
const FAILURE = 1;
const USAGE = 2;
const PRECONDITION = 3;

export interface MembershipIo {
  out(line: string): void;
  err(line: string): void;
  /** Redraw a progress line in place (a terminal); null writes finished tables only. */
  progressLine: ((line: string) => void) | null;
}

function bar(done: number, total: number, width = 24): string {
  if (total <= 0) return '';
  const f = Math.min(1, done / total);
  const n = Math.round(f * width);
  return `[${'#'.repeat(n)}${'.'.repeat(width - n)}] ${Math.round(f * 100)}% `;
}

function fmtBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1 << 20) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1 << 30) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  return `${(n / (1 << 30)).toFixed(2)} GiB`;
}

/** One progress report as a single line (the table bar when copying). */
export function formatAddNodeProgress(p: AddNodeProgress): string {
  if (p.phase !== 'copy' || !p.copy) return `${p.phase}: ${p.message}`;
  const c = p.copy;
  return `copy ${c.table} ${bar(c.rows, c.estimatedRows)}${c.rows} rows, ${fmtBytes(c.bytes)}${c.done ? ' done' : ''}`;
}

export async function cmdAddNode(
  config: ResolvedConfig,
  args: { node: string | undefined; source: string | undefined; json: boolean },
  logger: Logger,
  io: MembershipIo,
): Promise<number> {
  if (!args.node) {
    io.err('pgfleet-mm add-node: --node <name> is required');
    return USAGE;
  }
  try {
    const report = await addNode(config, args.node, {
      logger,
      ...(args.source ? { source: args.source } : {}),
      onProgress: (p) => {
        const line = formatAddNodeProgress(p);
        if (io.progressLine) io.progressLine(line);
        else if (p.phase !== 'copy' || p.copy?.done) io.err(line);
      },
    });
    if (args.json) io.out(JSON.stringify(report, null, 2));
    else if (report.alreadyJoined) io.out(`${report.node} had already joined; created what was missing`);
    else {
      io.out(
        `${report.node} joined from ${report.source} at ${report.snapshotLsn}: ${report.tables.reduce((n, t) => n + t.rows, 0)} rows in ${report.transactions} transactions`,
      );
      io.out(
        `  edges into ${report.node} start at: ${Object.entries(report.startPositions)
          .map(([k, v]) => `${k} ${v}`)
          .join(', ')}`,
      );
      io.out('  restart `pgfleet-mm run` with this config so it drives the new edges');
    }
    return OK;
  } catch (err) {
    if (err instanceof MembershipError && err.code !== 'ADD_NODE_FAILED') {
      io.err(`pgfleet-mm add-node: ${err.message}`);
      return err.code === 'MEMBERSHIP_INVALID' ? USAGE : PRECONDITION;
    }
    throw err;
  }
}

export async function cmdRemoveNode(
  config: ResolvedConfig,
  args: { node: string | undefined; json: boolean },
  logger: Logger,
  io: MembershipIo,
): Promise<number> {
  if (!args.node) {
    io.err('pgfleet-mm remove-node: --node <name> is required');
    return USAGE;
  }
  const report = await removeNode(config, args.node, { logger });
  if (args.json) io.out(JSON.stringify(report, null, 2));
  else {
    for (const n of report.nodes) {
      const d = n.dropped;
      const what = [
        ...d.slots.map((s) => `slot ${s}`),
        ...d.publications.map((p) => `publication ${p}`),
        ...d.origins.map((o) => `origin ${o}`),
      ];
      io.out(
        `${n.node.padEnd(12)} ${n.error ? `NOT CLEANED: ${n.error}` : what.length ? `dropped ${what.join(', ')}` : 'nothing to drop'}`,
      );
    }
    if (!report.complete)
      io.out(`unreachable: ${report.unreachable.join(', ')}; run remove-node again when they are back`);
  }
  return report.complete ? OK : FAILURE;
}

export async function cmdSequences(
  config: ResolvedConfig,
  args: { apply: boolean; stride: string | undefined; json: boolean },
  logger: Logger,
  io: MembershipIo,
): Promise<number> {
  let stride: number | undefined;
  if (args.stride !== undefined) {
    stride = Number(args.stride);
    if (!Number.isInteger(stride)) {
      io.err(`pgfleet-mm sequences: --stride must be an integer, got "${args.stride}"`);
      return USAGE;
    }
  }
  try {
    const report = await sequenceOffsets(config, {
      apply: args.apply,
      logger,
      ...(stride ? { stride } : {}),
    });
    if (args.json) io.out(JSON.stringify(report, null, 2));
    else {
      for (const s of report.steps) {
        const detail =
          s.action === 'alter'
            ? `INCREMENT ${s.current?.increment} → ${s.target?.increment}, next ${s.current?.next} → ${s.target?.start}`
            : s.action === 'unchanged'
              ? `already steps by ${s.current?.increment} (next ${s.current?.next})`
              : (s.reason ?? '');
        io.out(`${s.node.padEnd(12)} ${s.sequence.padEnd(32)} ${s.action.padEnd(9)} ${detail}`);
      }
      if (!report.applied) io.out(`dry run (stride ${report.stride}); pass --apply to change the sequences`);
    }
    return report.steps.some((s) => s.action === 'invalid' || s.action === 'missing') ? FAILURE : OK;
  } catch (err) {
    if (err instanceof MembershipError) {
      io.err(`pgfleet-mm sequences: ${err.message}`);
      return err.code === 'MEMBERSHIP_INVALID' ? USAGE : PRECONDITION;
    }
    throw err;
  }
}

/** stdout/stderr for the CLI; on a terminal the copy progress redraws one stderr line. */
export function terminalIo(): MembershipIo {
  let open = false;
  const endLine = () => {
    if (open) process.stderr.write('\n');
    open = false;
  };
  return {
    out(line) {
      endLine();
      process.stdout.write(line.endsWith('\n') ? line : `${line}\n`);
    },
    err(line) {
      endLine();
      process.stderr.write(`${line}\n`);
    },
    progressLine: process.stderr.isTTY
      ? (line) => {
          process.stderr.write(`\r\x1b[2K${line}`);
          open = true;
        }
      : null,
  };
}
