#!/usr/bin/env node
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { connect, PgfleetError, redactConninfo, toPgfleetError } from '@pgfleet/connection';
import { parseLsn } from '@pgfleet/wal';
import pino from 'pino';
import { checkMesh } from './check.js';
import { loadConfig, type ResolvedConfig } from './config.js';
import { cmdDeadLetters, DEAD_LETTERS_COMMAND_HELP } from './dead-letters/index.js';
import { startHttpServer } from './http.js';
import { formatProblems } from './init/checks.js';
import { InitError, initMesh } from './init/init.js';
import {
  cmdAddNode,
  cmdRemoveNode,
  cmdSequences,
  MEMBERSHIP_COMMANDS_HELP,
  terminalIo,
} from './membership/cli-commands.js';
import { edgesFor, findEdge } from './naming.js';
import { startReplicator } from './replicator.js';
import { meshStatus } from './status.js';

/** Exit codes, stable for scripts. */
export const EXIT = {
  OK: 0,
  /** Runtime failure (a node unreachable during status/check, replicator crashed). */
  FAILURE: 1,
  /** Bad command line or configuration. */
  USAGE: 2,
  /** `init` found problems on the nodes; nothing was created. */
  INIT_PROBLEMS: 3,
  /** `check` found tables that differ between nodes. */
  DIFFERENT: 4,
} as const;

const HELP = `pgfleet-mm: bidirectional mesh replication for stock PostgreSQL 15+

Usage: pgfleet-mm <command> [options]

Commands:
  init        check every node and create publications, slots, origins, schema pgfleet
  run         stream and apply every edge until SIGINT/SIGTERM (HTTP /health /status /metrics)
  status      per-edge slot lag, applied LSN, conflicts, paused transactions
  check       compare per-table checksums across nodes and name differing keys
  conflicts   list recorded conflicts on every node
  skip        skip a transaction that paused an edge: --edge a->b --lsn 0/16B3748
${DEAD_LETTERS_COMMAND_HELP}
${MEMBERSHIP_COMMANDS_HELP}

Options:
  -c, --config <file>   YAML config (or PGFLEET_MM_CONFIG)
      --listen <h:p>    HTTP listen address for run ('off' disables; or PGFLEET_MM_HTTP_LISTEN)
      --json            machine-readable output
      --edge <a->b>     edge for skip
      --lsn <lsn>       commit LSN of the transaction to skip (see status / pgfleet.dead_letters)
      --limit <n>       rows for conflicts and dead-letters (default 50)
      --replay <n:id>   dead-letters: apply this recorded transaction (node:id as listed)
      --all             dead-letters: include resolved ones
      --node <name>     node for add-node / remove-node
      --source <name>   copy source for add-node (default: first suitable node)
      --apply           sequences: change the sequences (default: dry run)
      --stride <n>      sequences: step between a node's values (default: number of nodes)
      --log-level <l>   pino level (default info)
  -h, --help            this help

Environment: PGFLEET_MM_CONFIG, PGFLEET_MM_HTTP_LISTEN, PGFLEET_MM_CONFLICT, PGFLEET_MM_DEAD_LETTER,
  PGFLEET_MM_NODE_<NAME>_CONNINFO (overrides a node's conninfo, e.g. to keep passwords out of the file).

Exit codes: 0 ok, 1 runtime failure, 2 usage/config error, 3 init found problems (nothing created),
  4 check found differences.

Examples:
  pgfleet-mm init -c mesh.yaml
  pgfleet-mm run -c mesh.yaml --listen 127.0.0.1:9187
  pgfleet-mm status -c mesh.yaml --json
  pgfleet-mm check -c mesh.yaml
  pgfleet-mm skip -c mesh.yaml --edge a->b --lsn 0/16B3748
  pgfleet-mm dead-letters -c mesh.yaml --replay b:12
`;

function out(s: string): void {
  process.stdout.write(s.endsWith('\n') ? s : `${s}\n`);
}

export async function main(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (err) {
    process.stderr.write(`pgfleet-mm: ${(err as Error).message}\n\n${HELP}`);
    return EXIT.USAGE;
  }
  const { values, positionals } = parsed;
  const command = positionals[0];
  if (values.help || !command) {
    out(HELP);
    return values.help ? EXIT.OK : EXIT.USAGE;
  }
  const logger = pino(
    { level: values['log-level'] ?? 'info', base: { component: 'cli' } },
    pino.destination(2),
  );
  let config: ResolvedConfig;
  try {
    config = loadConfig({
      ...(values.config ? { file: values.config } : {}),
      env: process.env,
      flags: { ...(values.listen ? { listen: values.listen } : {}) },
    });
  } catch (err) {
    process.stderr.write(`pgfleet-mm: ${redactConninfo((err as Error).message)}\n`);
    return EXIT.USAGE;
  }
  try {
    switch (command) {
      case 'init':
        return await cmdInit(config, values.json === true, logger);
      case 'run':
        return await cmdRun(config, logger);
      case 'status': {
        const st = await meshStatus(config);
        if (values.json) out(JSON.stringify({ edges: st }, null, 2));
        else {
          out('EDGE        ACTIVE  LAG_BYTES   APPLIED_LSN    CONFLICTS  PAUSED_AT   ERROR');
          for (const e of st) {
            out(
              `${`${e.source}->${e.target}`.padEnd(11)} ${String(e.active ?? '-').padEnd(7)} ${String(e.lagBytes ?? '-').padEnd(11)} ${String(e.appliedLsn ?? '-').padEnd(14)} ${String(e.conflicts ?? '-').padEnd(10)} ${String(e.pausedAt ?? '-').padEnd(11)} ${e.error ?? ''}`,
            );
          }
        }
        return st.some((e) => e.error) ? EXIT.FAILURE : EXIT.OK;
      }
      case 'check': {
        const res = await checkMesh(config);
        if (values.json) out(JSON.stringify({ tables: res }, null, 2));
        else {
          for (const t of res) {
            const sums = Object.entries(t.nodes)
              .map(([n, v]) => `${n}=${v ? `${v.rows} rows ${v.checksum.slice(0, 8)}` : '?'}`)
              .join('  ');
            out(`${t.equal ? 'OK  ' : 'DIFF'} ${t.table}  ${sums}${t.error ? `  error: ${t.error}` : ''}`);
            if (t.differingKeys.length) out(`     differing keys, no record: ${t.differingKeys.join(', ')}`);
            if (t.deadLetterKeys.length)
              out(
                `     differing keys, skipped (dead letters): ${t.deadLetterKeys.map((k) => `${k.key} [${k.deadLetters.join(' ')}]`).join(', ')}`,
              );
          }
        }
        return res.every((t) => t.equal) ? EXIT.OK : EXIT.DIFFERENT;
      }
      case 'conflicts':
        return await cmdConflicts(config, Number(values.limit ?? 50), values.json === true);
      case 'skip':
        return await cmdSkip(config, values.edge, values.lsn);
      case 'dead-letters':
        return await cmdDeadLetters(
          config,
          {
            node: values.node,
            replay: values.replay,
            all: values.all === true,
            limit: values.limit,
            json: values.json === true,
          },
          logger,
          { out, err: (line) => process.stderr.write(`${line}\n`) },
        );
      case 'add-node':
        return await cmdAddNode(
          config,
          { node: values.node, source: values.source, json: values.json === true },
          logger,
          terminalIo(),
        );
      case 'remove-node':
        return await cmdRemoveNode(
          config,
          { node: values.node, json: values.json === true },
          logger,
          terminalIo(),
        );
      case 'sequences':
        return await cmdSequences(
          config,
          { apply: values.apply === true, stride: values.stride, json: values.json === true },
          logger,
          terminalIo(),
        );
      default:
        process.stderr.write(`pgfleet-mm: unknown command "${command}"\n\n${HELP}`);
        return EXIT.USAGE;
    }
  } catch (err) {
    const e = toPgfleetError(err);
    process.stderr.write(`pgfleet-mm ${command}: ${e.message}\n`);
    return e.code === 'CONFIG_INVALID' ? EXIT.USAGE : EXIT.FAILURE;
  }
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c' },
      listen: { type: 'string' },
      json: { type: 'boolean' },
      edge: { type: 'string' },
      lsn: { type: 'string' },
      limit: { type: 'string' },
      replay: { type: 'string' },
      all: { type: 'boolean' },
      node: { type: 'string' },
      source: { type: 'string' },
      apply: { type: 'boolean' },
      stride: { type: 'string' },
      'log-level': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
}

async function cmdInit(config: ResolvedConfig, json: boolean, logger: pino.Logger): Promise<number> {
  try {
    const report = await initMesh(config, { logger });
    if (json) out(JSON.stringify(report, null, 2));
    else {
      out(`mesh ready: ${report.edges.length} edges, ${report.tables.length} tables`);
      for (const [k, v] of Object.entries(report.created))
        out(`  created ${k}: ${v.length ? v.join(', ') : '(none, already present)'}`);
    }
    return EXIT.OK;
  } catch (err) {
    if (err instanceof InitError) {
      if (json) out(JSON.stringify({ problems: err.problems }, null, 2));
      process.stderr.write(
        `pgfleet-mm init: ${err.problems.length} problem(s), nothing created:\n${formatProblems(err.problems)}\n`,
      );
      return err.message.startsWith('init found') ? EXIT.INIT_PROBLEMS : EXIT.FAILURE;
    }
    throw err;
  }
}

async function cmdRun(config: ResolvedConfig, logger: pino.Logger): Promise<number> {
  const controller = new AbortController();
  const rep = startReplicator(config, { logger, signal: controller.signal });
  const server = config.http.listen ? await startHttpServer(rep, config.http.listen, logger) : null;
  const onSignal = (sig: string) => {
    logger.info({ signal: sig }, 'shutting down');
    controller.abort();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  await rep.done;
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  return EXIT.OK;
}

async function cmdConflicts(config: ResolvedConfig, limit: number, json: boolean): Promise<number> {
  const all: Record<string, unknown>[] = [];
  for (const n of config.nodes) {
    const c = await connect(n.conninfo, { connectTimeoutMs: 5000, applicationName: 'pgfleet-mm:conflicts' });
    try {
      const { rows } = await c.query(
        `SELECT id, recorded_at, edge, table_schema || '.' || table_name AS table, kind, policy, resolution, reason, key,
                local_commit_ts, remote_commit_ts, remote_commit_lsn::text
           FROM pgfleet.conflicts ORDER BY id DESC LIMIT $1`,
        [limit],
      );
      for (const r of rows) all.push({ node: n.name, ...r });
    } finally {
      await c.end();
    }
  }
  if (json) out(JSON.stringify({ conflicts: all }, null, 2));
  else
    for (const r of all)
      out(
        `${r.node} ${r.edge} ${r.table} ${r.kind} → ${r.resolution} (${r.reason}) key=${JSON.stringify(r.key)}`,
      );
  return EXIT.OK;
}

async function cmdSkip(
  config: ResolvedConfig,
  edgeText: string | undefined,
  lsnText: string | undefined,
): Promise<number> {
  if (!edgeText || !lsnText) {
    process.stderr.write('pgfleet-mm skip: --edge and --lsn are required\n');
    return EXIT.USAGE;
  }
  const edge = findEdge(edgesFor(config.nodes), edgeText);
  if (!edge) {
    process.stderr.write(`pgfleet-mm skip: no edge "${edgeText}"\n`);
    return EXIT.USAGE;
  }
  parseLsn(lsnText); // rejects a malformed LSN before touching the node
  const target = config.nodes.find((n) => n.name === edge.target);
  if (!target) throw new PgfleetError('CONFIG_INVALID', `edge ${edge.id} has no target node`);
  const c = await connect(target.conninfo, { connectTimeoutMs: 5000, applicationName: 'pgfleet-mm:skip' });
  try {
    await c.query(
      `INSERT INTO pgfleet.skip_requests (edge, commit_lsn) VALUES ($1, $2::pg_lsn) ON CONFLICT DO NOTHING`,
      [edge.id, lsnText],
    );
  } finally {
    await c.end();
  }
  out(`skip requested: edge ${edge.id}, transaction ${lsnText}; the paused edge skips it on its next retry`);
  return EXIT.OK;
}

function invokedDirectly(): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return pathToFileURL(realpathSync(script)).href === import.meta.url;
  } catch {
    return false;
  }
}

if (invokedDirectly()) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`pgfleet-mm: ${redactConninfo(String((err as Error)?.stack ?? err))}\n`);
      process.exitCode = EXIT.FAILURE;
    },
  );
}
