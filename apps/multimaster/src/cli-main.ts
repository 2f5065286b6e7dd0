import {
  createLogger,
  findCommand,
  packageVersion,
  parseCommandLine,
  renderCommandHelp,
  renderProgramHelp,
} from '@pgfleet/cli';
import { connect, PgfleetError, redactConninfo, toPgfleetError } from '@pgfleet/connection';
import { parseLsn } from '@pgfleet/wal';
import type pino from 'pino';
import { checkMesh } from './check.js';
import { MM_HELP } from './cli-help.js';
import { loadConfig, type ResolvedConfig } from './config.js';
import { cmdDeadLetters } from './dead-letters/index.js';
import { formatNodeHa, nodeHaStatus } from './ha/node-status.js';
import { startHttpServer } from './http.js';
import { formatProblems } from './init/checks.js';
import { InitError, initMesh } from './init/init.js';
import { cmdAddNode, cmdRemoveNode, cmdSequences, terminalIo } from './membership/cli-commands.js';
import { edgesFor, findEdge } from './naming.js';
import { startReplicator } from './replicator.js';
import { meshStatus } from './status.js';

/** Exit codes, stable for scripts (documented in MM_HELP and the README). */
export const EXIT = {
  OK: 0,
  /** Runtime failure (a node unreachable during status/check, replicator crashed). */
  FAILURE: 1,
  /** Bad command line or configuration. */
  USAGE: 2,
  /** A precondition is not met, nothing was created or changed (init problems, add-node, sequences). */
  PRECONDITION: 3,
  /** `check` found tables that differ between nodes. */
  DIFFERENT: 4,
} as const;

const GRAMMAR = { booleans: ['json', 'apply', 'all'], aliases: { c: 'config' } } as const;

/** Flags commands read themselves; every other flag must name a config key. */
const COMMAND_FLAGS = ['config', 'edge', 'lsn', 'limit', 'node', 'source', 'stride', 'replay'];

function out(s: string): void {
  process.stdout.write(s.endsWith('\n') ? s : `${s}\n`);
}

function err(s: string): void {
  process.stderr.write(s.endsWith('\n') ? s : `${s}\n`);
}

export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let args: ReturnType<typeof parseCommandLine>;
  try {
    args = parseCommandLine(argv, GRAMMAR);
  } catch (e) {
    err(`pgfleet-mm: ${(e as Error).message}\n\n${renderProgramHelp(MM_HELP)}`);
    return EXIT.USAGE;
  }
  if (args.bools.has('version')) {
    out(`pgfleet-mm ${packageVersion(import.meta.url)}`);
    return EXIT.OK;
  }
  const command = findCommand(MM_HELP, args.command);
  if (args.bools.has('help') || args.command === 'help') {
    const about = args.command === 'help' ? findCommand(MM_HELP, args.positionals[0]) : command;
    out(about ? renderCommandHelp(MM_HELP, about) : renderProgramHelp(MM_HELP));
    return EXIT.OK;
  }
  if (!command) {
    err(
      `pgfleet-mm: ${args.command === undefined ? 'missing command' : `unknown command "${args.command}"`}\n\n${renderProgramHelp(MM_HELP)}`,
    );
    return EXIT.USAGE;
  }
  if (args.positionals.length > 0) {
    err(
      `pgfleet-mm ${command.name}: unexpected argument ${JSON.stringify(args.positionals[0])} (see pgfleet-mm ${command.name} --help)`,
    );
    return EXIT.USAGE;
  }
  const f = args.flags;
  const json = args.bools.has('json');
  let config: ResolvedConfig;
  try {
    const configFlags = Object.fromEntries(Object.entries(f).filter(([k]) => !COMMAND_FLAGS.includes(k)));
    config = loadConfig({ ...(f.config ? { file: f.config.trim() } : {}), env, flags: configFlags });
  } catch (e) {
    err(`pgfleet-mm ${command.name}: ${redactConninfo((e as Error).message)}`);
    return EXIT.USAGE;
  }
  const logger = createLogger({ level: config.log.level, format: config.log.format });
  try {
    switch (command.name) {
      case 'init':
        return await cmdInit(config, json, logger);
      case 'run':
        return await cmdRun(config, logger, f.node);
      case 'status':
        return await cmdStatus(config, json);
      case 'check':
        return await cmdCheck(config, json);
      case 'conflicts':
        return await cmdConflicts(config, Number(f.limit ?? 50), json);
      case 'skip':
        return await cmdSkip(config, f.edge, f.lsn, json);
      case 'dead-letters':
        return await cmdDeadLetters(
          config,
          { node: f.node, replay: f.replay, all: args.bools.has('all'), limit: f.limit, json },
          logger,
          { out, err },
        );
      case 'add-node':
        return await cmdAddNode(config, { node: f.node, source: f.source, json }, logger, terminalIo());
      case 'remove-node':
        return await cmdRemoveNode(config, { node: f.node, json }, logger, terminalIo());
      case 'sequences':
        return await cmdSequences(
          config,
          { apply: args.bools.has('apply'), stride: f.stride, json },
          logger,
          terminalIo(),
        );
      default:
        throw new Error(`command ${command.name} has help but no implementation`);
    }
  } catch (e) {
    const pe = toPgfleetError(e);
    err(`pgfleet-mm ${command.name}: ${redactConninfo(pe.message)}`);
    return pe.code === 'CONFIG_INVALID' ? EXIT.USAGE : EXIT.FAILURE;
  }
}

async function cmdStatus(config: ResolvedConfig, json: boolean): Promise<number> {
  const [st, nodes] = await Promise.all([
    meshStatus(config),
    Promise.all(config.nodes.filter((n) => n.servers.length > 0).map((n) => nodeHaStatus(n, config))),
  ]);
  if (json) out(JSON.stringify({ edges: st, nodes }, null, 2));
  else {
    out('EDGE        ACTIVE  LAG_BYTES   APPLIED_LSN    CONFLICTS  PAUSED_AT   HOLDER / ERROR');
    for (const e of st) {
      out(
        `${`${e.source}->${e.target}`.padEnd(11)} ${String(e.active ?? '-').padEnd(7)} ${String(e.lagBytes ?? '-').padEnd(11)} ${String(e.appliedLsn ?? '-').padEnd(14)} ${String(e.conflicts ?? '-').padEnd(10)} ${String(e.pausedAt ?? '-').padEnd(11)} ${e.error ?? e.holder ?? '(no replicator)'}`,
      );
    }
    if (nodes.length > 0) {
      out('');
      out('NODE        PRIMARY      FAILOVER        READY  WHY NOT');
      for (const n of nodes) for (const line of formatNodeHa(n)) out(line);
    }
  }
  return st.some((e) => e.error) ? EXIT.FAILURE : EXIT.OK;
}

async function cmdCheck(config: ResolvedConfig, json: boolean): Promise<number> {
  const res = await checkMesh(config);
  if (json) out(JSON.stringify({ tables: res }, null, 2));
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
      return err.message.startsWith('init found') ? EXIT.PRECONDITION : EXIT.FAILURE;
    }
    throw err;
  }
}

async function cmdRun(
  config: ResolvedConfig,
  logger: pino.Logger,
  node: string | undefined,
): Promise<number> {
  if (node !== undefined && !config.nodes.some((n) => n.name === node.trim())) {
    err(
      `pgfleet-mm run: --node ${node}: no such node in the mesh (${config.nodes.map((n) => n.name).join(', ')})`,
    );
    return EXIT.USAGE;
  }
  const controller = new AbortController();
  const rep = startReplicator(config, {
    logger,
    signal: controller.signal,
    ...(node !== undefined ? { node: node.trim() } : {}),
  });
  const server = config.http.listen ? await startHttpServer(rep, config.http.listen, logger) : null;
  const onSignal = (sig: string) => {
    logger.child({ component: 'cli' }).info({ signal: sig }, `received ${sig}, shutting down`);
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
  json: boolean,
): Promise<number> {
  if (!edgeText || !lsnText) {
    err('pgfleet-mm skip: --edge and --lsn are required (see pgfleet-mm skip --help)');
    return EXIT.USAGE;
  }
  const edge = findEdge(edgesFor(config.nodes), edgeText);
  if (!edge) {
    err(`pgfleet-mm skip: no edge "${edgeText}" in this mesh`);
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
  if (json) out(JSON.stringify({ requested: true, edge: edge.id, commitLsn: lsnText }, null, 2));
  else
    out(
      `skip requested: edge ${edge.id}, transaction ${lsnText}; the paused edge skips it on its next retry`,
    );
  return EXIT.OK;
}
