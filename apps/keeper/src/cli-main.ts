import {
  createLogger,
  findCommand,
  type ParsedArgs,
  packageVersion,
  parseCommandLine,
  renderCommandHelp,
  renderProgramHelp,
} from '@pgfleet/cli';
import { PgfleetError, redactConninfo } from '@pgfleet/connection';
import type { Logger } from 'pino';
import { KEEPER_HELP } from './cli-help.js';
import { systemClock } from './clock.js';
import { clusterView, formatClusterTable, formatHistoryTable, historyView } from './cluster-view.js';
import { type KeeperConfig, loadConfig } from './config.js';
import { createEtcdDcs } from './dcs/index.js';
import { etcdSecurity } from './etcd-security.js';
import { startKeeper } from './keeper.js';
import { preflight } from './preflight.js';
import { rejoin } from './rejoin.js';
import { rejoinSource } from './rejoin-source.js';
import type { KeeperStatus } from './state.js';
import { formatBytes } from './units.js';

/**
 * `pgfleet-keeper` commands, as a function of argv and env (cli.ts is the thin entry that
 * calls process.exit).
 * Exit codes: 0 ok, 1 runtime failure (keeper crashed, keeper unreachable, request refused),
 * 2 bad configuration or usage (message names the key, flag or node).
 */

export const EXIT_OK = 0;
export const EXIT_RUNTIME = 1;
export const EXIT_USAGE = 2;

const GRAMMAR = { booleans: ['json', 'force'], aliases: { c: 'config' } } as const;

/** Flags a command reads itself; every other flag must name a config key. */
const COMMAND_FLAGS = ['config', 'url', 'pgdata', 'bindir', 'slot', 'primary-conninfo', 'candidate'];

type Args = ParsedArgs;

function configFrom(flags: Record<string, string>, env: NodeJS.ProcessEnv): KeeperConfig {
  const rest = Object.fromEntries(Object.entries(flags).filter(([k]) => !COMMAND_FLAGS.includes(k)));
  const file = flags.config?.trim();
  return loadConfig({ ...(file ? { file } : {}), env, flags: rest });
}

function keeperUrl(args: Args, env: NodeJS.ProcessEnv): { url: string; token?: string } {
  if (args.flags.url) {
    const token = env.PGFLEET_KEEPER_HTTP_TOKEN;
    return { url: args.flags.url, ...(token ? { token } : {}) };
  }
  if (args.flags.config) {
    const c = configFrom(args.flags, env);
    const host = c.http.host === '0.0.0.0' ? '127.0.0.1' : c.http.host === '::' ? '[::1]' : c.http.host;
    const h = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
    return { url: `http://${h}:${c.http.port}`, ...(c.http.token ? { token: c.http.token } : {}) };
  }
  return {
    url: 'http://127.0.0.1:8008',
    ...(env.PGFLEET_KEEPER_HTTP_TOKEN ? { token: env.PGFLEET_KEEPER_HTTP_TOKEN } : {}),
  };
}

export function formatStatusTable(s: KeeperStatus): string {
  const rows: Array<[string, string]> = [
    ['node', `${s.node} (${s.mode} mode)`],
    [
      'role',
      `${s.role}${s.fenced ? ' FENCED' : ''}${s.paused ? ' (keeper paused)' : ''} since ${s.roleSince}`,
    ],
    ['reason', s.roleReason],
    ['timeline', s.timeline === null ? '-' : String(s.timeline)],
    ['lsn', s.lsn ?? '-'],
  ];
  if (s.role === 'standby')
    rows.push(
      ['streaming', s.streaming ? 'yes' : 'no'],
      ['lag', s.lagBytes === null ? 'unknown' : formatBytes(s.lagBytes)],
      ['replay', s.replayPaused ? 'PAUSED' : 'running'],
    );
  if (s.role === 'primary')
    rows.push(
      ['standby lag', s.lagBytes === null ? 'unknown' : formatBytes(s.lagBytes)],
      ['write lease', s.lease],
    );
  if (s.cluster)
    rows.push(
      [
        'cluster',
        `leader ${s.cluster.leader ?? 'none'}; ${s.cluster.members.map((m) => `${m.name} ${m.role} (${m.state})`).join(', ') || 'no members'}`,
      ],
      ...(s.cluster.etcdError ? [['etcd', s.cluster.etcdError] as [string, string]] : []),
      [
        'sync',
        s.sync.configured === ''
          ? 'asynchronous cluster'
          : `${s.sync.configured}, current ${JSON.stringify(s.sync.current ?? '?')}${s.sync.degraded ? ' DEGRADED' : ''}${s.role === 'standby' ? `, this standby ${s.sync.observation}` : ''}`,
      ],
    );
  else if (s.mode === 'node') {
    rows.push(
      [
        'sync',
        s.sync.configured === ''
          ? 'asynchronous pair'
          : `configured ${JSON.stringify(s.sync.configured)}, current ${JSON.stringify(s.sync.current ?? '?')}${s.sync.degraded ? ' DEGRADED' : ''}`,
      ],
      [
        'peer',
        `${s.peer.name}: ${s.peer.role}${s.peer.timeline !== null ? ` (timeline ${s.peer.timeline})` : ''}, ` +
          `${s.peer.consecutiveFailures} consecutive failures, last probe ${s.peer.lastProbeLatencyMs ?? '-'} ms`,
      ],
    );
  }
  if (s.witness)
    rows.push(
      [
        'vote',
        s.witness.grant ? `granted to ${s.witness.grant.to} at ${s.witness.grant.at}` : 'none granted',
      ],
      ['heartbeats', Object.keys(s.witness.heartbeats).join(', ') || 'none'],
    );
  rows.push(
    ['decision', s.decision ? `${s.decision.kind}: ${s.decision.reason}` : '-'],
    [
      'counters',
      `promotions ${s.counters.promotions}, degrades ${s.counters.degrades}, restores ${s.counters.restores}, fences ${s.counters.fences}`,
    ],
  );
  if (s.lastError) rows.push(['last error', s.lastError]);
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n');
}

function write(stream: NodeJS.WriteStream, text: string): void {
  stream.write(text.endsWith('\n') ? text : `${text}\n`);
}

async function cmdStatus(args: Args, env: NodeJS.ProcessEnv): Promise<number> {
  const { url } = keeperUrl(args, env);
  let res: Response;
  try {
    res = await fetch(`${url.replace(/\/+$/, '')}/status`, { signal: AbortSignal.timeout(5000) });
  } catch (err) {
    write(process.stderr, `pgfleet-keeper: cannot reach the keeper at ${url}: ${(err as Error).message}`);
    return EXIT_RUNTIME;
  }
  if (!res.ok) {
    write(process.stderr, `pgfleet-keeper: ${url}/status answered HTTP ${res.status}`);
    return EXIT_RUNTIME;
  }
  const status = (await res.json()) as KeeperStatus;
  write(process.stdout, args.bools.has('json') ? JSON.stringify(status, null, 2) : formatStatusTable(status));
  return EXIT_OK;
}

/** One line for people from an operation's JSON answer. */
export function describeOperation(command: string, ok: boolean, body: Record<string, unknown>): string {
  if (!ok) return `${command} failed: ${String(body.error ?? 'no reason given')}`;
  switch (command) {
    case 'pause':
      return body.cluster
        ? `cluster ${String(body.cluster)} paused: no automatic failover, fencing or sync change until resume`
        : 'keeper paused: no automatic action (promote, degrade, fence) until resume';
    case 'resume':
      return body.cluster
        ? `cluster ${String(body.cluster)} resumed: automatic actions are on again`
        : 'keeper resumed: automatic actions are on again';
    case 'switchover':
      return `switchover done: ${String(body.promoted)} is primary on timeline ${String(body.timeline ?? '?')} (caught up to ${String(body.lsn ?? '?')}); rejoin the old primary with pgfleet-keeper rejoin`;
    case 'failover':
      return `failover done: ${String(body.promoted)} is primary on timeline ${String(body.timeline ?? '?')}${body.forced ? ' (forced)' : ''}`;
    default:
      return `${command}: ${JSON.stringify(body)}`;
  }
}

async function cmdPost(
  command: string,
  args: Args,
  env: NodeJS.ProcessEnv,
  body: unknown = {},
  target: { url: string; token?: string } = keeperUrl(args, env),
): Promise<number> {
  const { url, token } = target;
  const json = args.bools.has('json');
  let res: Response;
  let text: string;
  try {
    res = await fetch(`${url.replace(/\/+$/, '')}/${command}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(120_000),
    });
    text = await res.text();
  } catch (err) {
    write(process.stderr, `pgfleet-keeper: cannot reach the keeper at ${url}: ${(err as Error).message}`);
    return EXIT_RUNTIME;
  }
  let answer: Record<string, unknown>;
  try {
    answer = JSON.parse(text) as Record<string, unknown>;
  } catch {
    answer = { error: `HTTP ${res.status}: ${text.slice(0, 200)}` };
  }
  if (json)
    write(
      res.ok ? process.stdout : process.stderr,
      JSON.stringify({ ok: res.ok, status: res.status, ...answer }, null, 2),
    );
  else write(res.ok ? process.stdout : process.stderr, describeOperation(command, res.ok, answer));
  return res.ok ? EXIT_OK : EXIT_RUNTIME;
}

export interface NodeCheck {
  /** Config key of the conninfo checked, e.g. `peer.conninfo`. */
  key: string;
  node: string;
  role: string;
  /** Never holds a password. */
  reason: string;
  /** ok, down (the keeper waits for it), config (only the operator can fix it). */
  severity: 'ok' | 'down' | 'config';
  /** What was found, naming the key (never a password). */
  line: string;
  /** Why this line makes the command fail, if it does. */
  problem: string | null;
}

/**
 * `check` fails on any problem; `run` only on configuration problems (a node that is merely
 * down is what the keeper is there for), and not at all with --force.
 */
async function checkNodes(c: KeeperConfig, strict: boolean): Promise<NodeCheck[]> {
  return (await preflight(c)).map((f) => ({
    key: f.key,
    node: f.node,
    role: f.role,
    reason: f.reason,
    severity: f.severity,
    line: f.line,
    problem: f.severity === 'config' || (strict && f.severity === 'down') ? f.severity : null,
  }));
}

function checkLine(n: NodeCheck): string {
  return n.line;
}

async function cmdCheck(args: Args, env: NodeJS.ProcessEnv): Promise<number> {
  const config = configFrom(args.flags, env);
  const nodes = await checkNodes(config, true);
  const ok = nodes.every((n) => n.problem === null);
  if (args.bools.has('json')) write(process.stdout, JSON.stringify({ ok, nodes }, null, 2));
  else for (const n of nodes) write(n.problem ? process.stderr : process.stdout, checkLine(n));
  return ok ? EXIT_OK : EXIT_USAGE;
}

function loggerFor(config: KeeperConfig): Logger {
  return createLogger({ level: config.logLevel, format: config.logFormat });
}

async function cmdRun(args: Args, env: NodeJS.ProcessEnv): Promise<number> {
  const config = configFrom(args.flags, env);
  const logger = loggerFor(config);
  const log = logger.child({ component: 'keeper', node: config.node.name });
  const force = args.bools.has('force');
  let pre = EXIT_OK;
  for (const n of await checkNodes(config, false)) {
    if (n.problem && !force) {
      write(process.stderr, `pgfleet-keeper: ${checkLine(n)} (fix it, or start anyway with --force)`);
      pre = EXIT_USAGE;
    } else if (n.problem)
      log.error({ key: n.key, peer: n.node, forced: true }, `${checkLine(n)}; started anyway (--force)`);
    else if (n.severity === 'down')
      log.warn({ key: n.key, peer: n.node }, `${checkLine(n)}; the keeper waits for it`);
  }
  if (pre !== EXIT_OK) return pre;
  const ctl = new AbortController();
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    signals++;
    if (signals > 1) process.exit(EXIT_RUNTIME);
    log.info({ signal: sig }, `received ${sig}, stopping`);
    ctl.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const keeper = await startKeeper(config, { logger, signal: ctl.signal });
  await keeper.done;
  return EXIT_OK;
}

/** The etcd of a config with dcs.etcd, for the commands that read or write it directly. */
function etcdOf(c: KeeperConfig) {
  const etcd = c.dcs?.etcd;
  if (!etcd) return null;
  return createEtcdDcs({
    endpoints: etcd.endpoints,
    prefix: etcd.prefix,
    cluster: c.cluster.name,
    memberName: c.node.name,
    ttlSeconds: etcd.ttlSeconds,
    requestTimeoutMs: Math.max(etcd.requestTimeoutMs, 2000),
    security: etcdSecurity(etcd),
    logger: createLogger({ level: 'silent', format: 'json' }),
    clock: systemClock,
  });
}

/**
 * `pause`/`resume`: with a config on etcd, the whole cluster, written to etcd directly (every
 * keeper follows the config key, like `patronictl pause`); otherwise the one keeper, over HTTP.
 */
async function cmdPause(command: 'pause' | 'resume', args: Args, env: NodeJS.ProcessEnv): Promise<number> {
  const c = args.flags.config && !args.flags.url ? configFrom(args.flags, env) : null;
  const dcs = c ? etcdOf(c) : null;
  if (!c || !dcs) return cmdPost(command, args, env);
  const paused = command === 'pause';
  try {
    await dcs.updateConfig((cur) => ({ ...cur, paused }));
  } catch (err) {
    write(
      process.stderr,
      `pgfleet-keeper ${command}: cannot write to etcd (${c.dcs?.etcd.endpoints.join(', ')}): ${(err as Error).message}`,
    );
    return EXIT_RUNTIME;
  } finally {
    await dcs.close();
  }
  const body = { ok: true, paused, cluster: c.cluster.name };
  write(
    process.stdout,
    args.bools.has('json') ? JSON.stringify(body, null, 2) : describeOperation(command, true, body),
  );
  return EXIT_OK;
}

/**
 * `switchover [--candidate <member>]`: runs on the leader's keeper. With a config on etcd and no
 * --url, the leader and its keeper's URL come from etcd.
 */
async function cmdSwitchover(args: Args, env: NodeJS.ProcessEnv): Promise<number> {
  const body = args.flags.candidate ? { candidate: args.flags.candidate } : {};
  const c = args.flags.config && !args.flags.url ? configFrom(args.flags, env) : null;
  const dcs = c ? etcdOf(c) : null;
  if (!c || !dcs) return cmdPost('switchover', args, env, body);
  let url: string | null = null;
  try {
    const snap = await dcs.readCluster();
    const leader = snap.leader?.name;
    url = snap.members.find((m) => m.name === leader)?.keeperUrl ?? null;
    if (!leader || !url) {
      write(
        process.stderr,
        `pgfleet-keeper switchover: ${leader ? `the leader ${leader} publishes no keeper URL` : 'no member holds the leader key'}`,
      );
      return EXIT_RUNTIME;
    }
  } catch (err) {
    write(
      process.stderr,
      `pgfleet-keeper switchover: cannot read the cluster from etcd: ${(err as Error).message}`,
    );
    return EXIT_RUNTIME;
  } finally {
    await dcs.close();
  }
  return cmdPost('switchover', args, env, body, { url, ...(c.http.token ? { token: c.http.token } : {}) });
}

/** `list` and `history`: one read of the cluster from etcd, printed. */
async function cmdFromEtcd(command: 'list' | 'history', args: Args, env: NodeJS.ProcessEnv): Promise<number> {
  const c = configFrom(args.flags, env);
  const dcs = etcdOf(c);
  if (!dcs) {
    write(
      process.stderr,
      `pgfleet-keeper ${command}: the configuration has no dcs.etcd (list and history read a cluster on etcd)`,
    );
    return EXIT_USAGE;
  }
  try {
    const snap = await dcs.readCluster();
    const json = args.bools.has('json');
    if (command === 'list') {
      const view = clusterView(c.cluster.name, snap, c.cluster.members);
      write(process.stdout, json ? JSON.stringify(view, null, 2) : formatClusterTable(view));
    } else {
      const h = historyView(snap.history);
      write(process.stdout, json ? JSON.stringify(h, null, 2) : formatHistoryTable(h));
    }
    return EXIT_OK;
  } catch (err) {
    write(
      process.stderr,
      `pgfleet-keeper ${command}: cannot read the cluster from etcd (${c.dcs?.etcd.endpoints.join(', ')}): ${(err as Error).message}`,
    );
    return EXIT_RUNTIME;
  } finally {
    await dcs.close();
  }
}

async function cmdRejoin(args: Args, env: NodeJS.ProcessEnv): Promise<number> {
  const { pgdata, bindir, slot, 'primary-conninfo': primaryConninfo } = args.flags;
  const config = configFrom(args.flags, env);
  if (config.mode !== 'node') {
    write(process.stderr, 'pgfleet-keeper: rejoin needs a data node keeper configuration (mode: node)');
    return EXIT_USAGE;
  }
  const json = args.bools.has('json');
  const steps: string[] = [];
  // On etcd the node follows whoever holds the leader key; --primary-conninfo overrides it.
  let source: { name: string; conninfo: string } | undefined;
  const dcs = etcdOf(config);
  if (dcs) {
    try {
      const found = rejoinSource(config, await dcs.readCluster());
      if ('error' in found) {
        if (!primaryConninfo) {
          write(process.stderr, `pgfleet-keeper rejoin: ${found.error}`);
          return EXIT_RUNTIME;
        }
        source = { name: 'the primary', conninfo: primaryConninfo };
      } else source = primaryConninfo ? { name: found.name, conninfo: primaryConninfo } : found;
    } catch (err) {
      if (!primaryConninfo) {
        write(
          process.stderr,
          `pgfleet-keeper rejoin: cannot read the leader from etcd (${(err as Error).message}): pass --primary-conninfo`,
        );
        return EXIT_RUNTIME;
      }
      source = { name: 'the primary', conninfo: primaryConninfo };
    } finally {
      await dcs.close();
    }
  }
  const { plan, pgdata: dir } = await rejoin(config, {
    ...(source ? { source } : {}),
    ...(pgdata ? { pgdata: pgdata.trim() } : {}),
    ...(bindir ? { bindir: bindir.trim() } : {}),
    ...(primaryConninfo ? { primaryConninfo } : {}),
    ...(slot ? { slot } : {}),
    force: args.bools.has('force'),
    ...(env.PATH ? { path: env.PATH } : {}),
    print: (line) => (json ? steps.push(redactConninfo(line)) : write(process.stdout, line)),
  });
  const ok = plan.kind !== 'refuse';
  if (json)
    write(ok ? process.stdout : process.stderr, JSON.stringify({ ok, plan, pgdata: dir, steps }, null, 2));
  else if (!ok) write(process.stderr, `pgfleet-keeper: rejoin refused: ${plan.reason}`);
  else if (plan.kind === 'nothing') write(process.stdout, plan.reason);
  return ok ? EXIT_OK : EXIT_RUNTIME;
}

export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let args: Args;
  try {
    args = parseCommandLine(argv, GRAMMAR);
  } catch (err) {
    write(process.stderr, `pgfleet-keeper: ${(err as Error).message}\n\n${renderProgramHelp(KEEPER_HELP)}`);
    return EXIT_USAGE;
  }
  if (args.bools.has('version')) {
    write(process.stdout, `pgfleet-keeper ${packageVersion(import.meta.url)}`);
    return EXIT_OK;
  }
  const command = findCommand(KEEPER_HELP, args.command);
  if (args.bools.has('help') || args.command === 'help') {
    const about = args.command === 'help' ? findCommand(KEEPER_HELP, args.positionals[0]) : command;
    write(process.stdout, about ? renderCommandHelp(KEEPER_HELP, about) : renderProgramHelp(KEEPER_HELP));
    return EXIT_OK;
  }
  if (args.command === undefined) {
    write(process.stderr, `pgfleet-keeper: missing command\n\n${renderProgramHelp(KEEPER_HELP)}`);
    return EXIT_USAGE;
  }
  if (!command) {
    write(
      process.stderr,
      `pgfleet-keeper: unknown command ${JSON.stringify(args.command)}\n\n${renderProgramHelp(KEEPER_HELP)}`,
    );
    return EXIT_USAGE;
  }
  if (args.positionals.length > 0) {
    write(
      process.stderr,
      `pgfleet-keeper ${command.name}: unexpected argument ${JSON.stringify(args.positionals[0])} (see pgfleet-keeper ${command.name} --help)`,
    );
    return EXIT_USAGE;
  }
  try {
    switch (command.name) {
      case 'run':
        return await cmdRun(args, env);
      case 'check':
        return await cmdCheck(args, env);
      case 'status':
        return await cmdStatus(args, env);
      case 'pause':
      case 'resume':
        return await cmdPause(command.name, args, env);
      case 'switchover':
        return await cmdSwitchover(args, env);
      case 'failover':
        return await cmdPost('failover', args, env, {
          force: args.bools.has('force'),
          ...(args.flags.candidate ? { candidate: args.flags.candidate } : {}),
        });
      case 'rejoin':
        return await cmdRejoin(args, env);
      case 'list':
      case 'history':
        return await cmdFromEtcd(command.name, args, env);
      default:
        throw new Error(`command ${command.name} has help but no implementation`);
    }
  } catch (err) {
    const message = redactConninfo((err as Error).message ?? String(err));
    write(process.stderr, `pgfleet-keeper ${command.name}: ${message}`);
    if (err instanceof PgfleetError && err.code === 'CONFIG_INVALID') return EXIT_USAGE;
    return EXIT_RUNTIME;
  }
}
