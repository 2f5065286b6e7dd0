import { PgfleetError, redactConninfo } from '@pgfleet/connection';
import pino from 'pino';
import { type KeeperConfig, loadConfig } from './config.js';
import { startKeeper } from './keeper.js';
import { preflight } from './preflight.js';
import { rejoin } from './rejoin.js';
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

const HELP = `pgfleet-keeper: automatic failover and sync degrade for a PostgreSQL primary + standby

Usage:
  pgfleet-keeper run    --config <file.yaml> [--force] [--<key> <value>...]
  pgfleet-keeper check  --config <file.yaml> [--<key> <value>...]
  pgfleet-keeper status [--json] [--url <keeper url>] [--config <file.yaml>]
  pgfleet-keeper pause | resume [--url <keeper url>] [--config <file.yaml>]
  pgfleet-keeper switchover [--url <keeper url>] [--config <file.yaml>]
  pgfleet-keeper failover [--force] [--url <keeper url>] [--config <file.yaml>]
  pgfleet-keeper rejoin --config <file.yaml> [--pgdata <dir>] [--bindir <dir>]
                        [--primary-conninfo <conninfo>] [--slot <name>] [--force]
  pgfleet-keeper --help

Commands:
  run      run the keeper (node or witness mode) until SIGINT/SIGTERM; refuses to start on
           the configuration problems check reports (--force starts anyway)
  check    validate the configuration and probe the nodes once, then exit
  status   print a keeper's /status as a table (or raw JSON with --json)
  pause    stop automatic actions (promote, degrade, fence) until resume
  resume   resume automatic actions
  switchover  planned handover (ask the primary's keeper): fence the primary, wait until the
           standby replayed everything, promote it; the old primary stays fenced (rejoin it)
  failover promote the standby now (ask its keeper): refused while the primary answers (use
           switchover); without --force only if lag, replay and sync gates pass
  rejoin   make this node (a failed or fenced old primary) a standby of its peer: stop it,
           pg_rewind from the peer, keep its own config files, write standby.signal and
           primary_conninfo, lift the fence; then start PostgreSQL. --pgdata is needed when the
           server is down; --slot streams through a physical slot on the peer (created if
           missing); --force rewinds even an unfenced primary (discarding its writes)

Any configuration key can be given as a flag, dotted or kebab-case, and as an environment
variable PGFLEET_KEEPER_<KEY> (e.g. --interval 500ms, --node.name a, --peer-keeper-url URL,
PGFLEET_KEEPER_HTTP_TOKEN). Flags win over the environment, which wins over the file.
pause/resume/switchover/failover send the bearer token from PGFLEET_KEEPER_HTTP_TOKEN or http.token.

Examples:
  pgfleet-keeper run --config /etc/pgfleet/keeper.yaml
  pgfleet-keeper run --config keeper.yaml --interval 500ms --failures 3
  pgfleet-keeper run --mode witness --config witness.yaml
  pgfleet-keeper check --config keeper.yaml
  pgfleet-keeper status --url http://10.0.0.5:8008
  pgfleet-keeper status --json --config keeper.yaml
  PGFLEET_KEEPER_HTTP_TOKEN=... pgfleet-keeper pause --url http://127.0.0.1:8008
  pgfleet-keeper switchover --config keeper-a.yaml     # on the primary's keeper
  pgfleet-keeper failover --force --url http://10.0.0.2:8008   # on the standby's keeper
  pgfleet-keeper rejoin --config keeper.yaml --pgdata /var/lib/postgresql/15/main

Exit codes:
  0  success
  1  runtime failure (keeper stopped on an error, keeper unreachable, request refused,
     rejoin refused or failed)
  2  bad configuration or usage (the message names the key, flag or node)
`;

interface Args {
  command: string | undefined;
  flags: Record<string, string>;
  bools: Set<string>;
}

const BOOLEAN_FLAGS = new Set(['json', 'help', 'h', 'force']);

export function parseArgs(argv: string[]): Args {
  const flags: Record<string, string> = {};
  const bools = new Set<string>();
  let command: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg.startsWith('--') || (arg.startsWith('-') && arg.length === 2)) {
      const body = arg.replace(/^--?/, '');
      const eq = body.indexOf('=');
      const name = eq >= 0 ? body.slice(0, eq) : body;
      if (BOOLEAN_FLAGS.has(name)) {
        bools.add(name === 'h' ? 'help' : name);
        continue;
      }
      let value: string | undefined = eq >= 0 ? body.slice(eq + 1) : argv[++i];
      if (value === undefined) throw new UsageError(`option --${name} needs a value`);
      if (['config', 'url', 'mode', 'pgdata', 'bindir'].includes(name)) value = value.trim();
      flags[name] = value;
    } else if (command === undefined) command = arg;
    else throw new UsageError(`unexpected argument ${JSON.stringify(arg)}`);
  }
  return { command, flags, bools };
}

class UsageError extends Error {}

function configFrom(flags: Record<string, string>, env: NodeJS.ProcessEnv): KeeperConfig {
  const { config: file, url: _url, ...rest } = flags;
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
  if (s.mode === 'node') {
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

async function cmdStatus(args: Args, env: NodeJS.ProcessEnv): Promise<number> {
  const { url } = keeperUrl(args, env);
  let res: Response;
  try {
    res = await fetch(`${url.replace(/\/+$/, '')}/status`, { signal: AbortSignal.timeout(5000) });
  } catch (err) {
    process.stderr.write(`pgfleet-keeper: cannot reach the keeper at ${url}: ${(err as Error).message}\n`);
    return EXIT_RUNTIME;
  }
  if (!res.ok) {
    process.stderr.write(`pgfleet-keeper: ${url}/status answered HTTP ${res.status}\n`);
    return EXIT_RUNTIME;
  }
  const status = (await res.json()) as KeeperStatus;
  process.stdout.write(
    args.bools.has('json') ? `${JSON.stringify(status, null, 2)}\n` : `${formatStatusTable(status)}\n`,
  );
  return EXIT_OK;
}

async function cmdPost(
  path: string,
  args: Args,
  env: NodeJS.ProcessEnv,
  body: unknown = {},
): Promise<number> {
  const { url, token } = keeperUrl(args, env);
  try {
    const res = await fetch(`${url.replace(/\/+$/, '')}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(120_000),
    });
    const text = await res.text();
    (res.ok ? process.stdout : process.stderr).write(`${text}\n`);
    return res.ok ? EXIT_OK : EXIT_RUNTIME;
  } catch (err) {
    process.stderr.write(`pgfleet-keeper: cannot reach the keeper at ${url}: ${(err as Error).message}\n`);
    return EXIT_RUNTIME;
  }
}

/**
 * `check`: every finding printed, exit 2 on any problem. `run`: exit 2 on configuration
 * problems unless --force (a node that is merely down is what the keeper is there for).
 */
async function checkNodes(
  c: KeeperConfig,
  strict: boolean,
  force: boolean,
  log: pino.Logger,
): Promise<number> {
  let worst = EXIT_OK;
  for (const f of await preflight(c)) {
    if (strict) {
      if (f.severity === 'ok') process.stdout.write(`${f.line}\n`);
      else {
        process.stderr.write(`pgfleet-keeper: ${f.line}\n`);
        worst = EXIT_USAGE;
      }
    } else if (f.severity === 'config' && !force) {
      process.stderr.write(`pgfleet-keeper: ${f.line} (fix it, or start anyway with --force)\n`);
      worst = EXIT_USAGE;
    } else if (f.severity === 'config')
      log.error({ key: f.key, node: f.node, forced: true }, `${f.line}; started anyway (--force)`);
    else if (f.severity === 'down')
      log.warn({ key: f.key, node: f.node }, `${f.line}; the keeper waits for it`);
  }
  return worst;
}

async function cmdRun(args: Args, env: NodeJS.ProcessEnv): Promise<number> {
  const config = configFrom(args.flags, env);
  const logger = pino({ level: config.logLevel });
  const pre = await checkNodes(
    config,
    false,
    args.bools.has('force'),
    logger.child({ component: 'keeper', node: config.node.name }),
  );
  if (pre !== EXIT_OK) return pre;
  const ctl = new AbortController();
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    signals++;
    if (signals > 1) process.exit(EXIT_RUNTIME);
    logger.info({ component: 'keeper', signal: sig }, `received ${sig}, stopping`);
    ctl.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const keeper = await startKeeper(config, { logger, signal: ctl.signal });
  await keeper.done;
  return EXIT_OK;
}

async function cmdRejoin(args: Args, env: NodeJS.ProcessEnv): Promise<number> {
  const { pgdata, bindir, slot, 'primary-conninfo': primaryConninfo, ...rest } = args.flags;
  const config = configFrom(rest, env);
  if (config.mode !== 'node') {
    process.stderr.write('pgfleet-keeper: rejoin needs a data node keeper configuration (mode: node)\n');
    return EXIT_USAGE;
  }
  const { plan } = await rejoin(config, {
    ...(pgdata ? { pgdata } : {}),
    ...(bindir ? { bindir } : {}),
    ...(primaryConninfo ? { primaryConninfo } : {}),
    ...(slot ? { slot } : {}),
    force: args.bools.has('force'),
    ...(env.PATH ? { path: env.PATH } : {}),
    print: (line) => process.stdout.write(`${line}\n`),
  });
  if (plan.kind === 'refuse') {
    process.stderr.write(`pgfleet-keeper: rejoin refused: ${plan.reason}\n`);
    return EXIT_RUNTIME;
  }
  if (plan.kind === 'nothing') process.stdout.write(`${plan.reason}\n`);
  return EXIT_OK;
}

export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let args: Args;
  try {
    args = parseArgs(argv);
  } catch (err) {
    process.stderr.write(`pgfleet-keeper: ${(err as Error).message}\n\n${HELP}`);
    return EXIT_USAGE;
  }
  if (args.bools.has('help') || args.command === 'help') {
    process.stdout.write(HELP);
    return EXIT_OK;
  }
  try {
    switch (args.command) {
      case 'run':
        return await cmdRun(args, env);
      case 'check': {
        const config = configFrom(args.flags, env);
        return await checkNodes(config, true, false, pino({ level: 'silent' }));
      }
      case 'status':
        return await cmdStatus(args, env);
      case 'pause':
      case 'resume':
        return await cmdPost(`/${args.command}`, args, env);
      case 'rejoin':
        return await cmdRejoin(args, env);
      case 'switchover':
        return await cmdPost('/switchover', args, env);
      case 'failover':
        return await cmdPost('/failover', args, env, { force: args.bools.has('force') });
      case undefined:
        process.stderr.write(`pgfleet-keeper: missing command\n\n${HELP}`);
        return EXIT_USAGE;
      default:
        process.stderr.write(`pgfleet-keeper: unknown command ${JSON.stringify(args.command)}\n\n${HELP}`);
        return EXIT_USAGE;
    }
  } catch (err) {
    const message = redactConninfo((err as Error).message ?? String(err));
    process.stderr.write(`pgfleet-keeper: ${message}\n`);
    if (err instanceof PgfleetError && err.code === 'CONFIG_INVALID') return EXIT_USAGE;
    return EXIT_RUNTIME;
  }
}
