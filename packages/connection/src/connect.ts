import pg from 'pg';
import { type BackoffPolicy, backoffDelay } from './backoff.js';
import {
  type ClientConfigOptions,
  clientConfigFor,
  connectTimeoutFor,
  type HostTarget,
  orderTargets,
  type PgClientConfig,
  resolveTargets,
  sslFor,
  targetLabel,
} from './client-config.js';
import { type ConnParams, parseConninfo } from './conninfo.js';
import { NodeUnreachableError, PgfleetError } from './errors.js';
import { closeClient, raceHard, sleep } from './hard-timeout.js';
import { toPgfleetError } from './map-error.js';
import {
  parseTargetSessionAttrs,
  type SessionFacts,
  sessionMatches,
  type TargetSessionAttrs,
} from './session-attrs.js';
import { SqlState } from './sqlstate.js';

export interface RetryOptions {
  /** Total rounds over the host list (1 = no retry). */
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export interface ConnectOptions extends ClientConfigOptions {
  /**
   * Hard limit per host, covering TCP connect, TLS, authentication and startup; the
   * socket is destroyed when it fires, so a black-holed server costs exactly this long.
   * Default: conninfo's connect_timeout, else 10 s.
   */
  connectTimeoutMs?: number;
  /** Sent as the session's statement_timeout. */
  statementTimeoutMs?: number;
  /** Overrides conninfo's application_name. */
  applicationName?: string;
  /** Retry whole rounds over the host list while every failure is transient. */
  retry?: RetryOptions;
  /** Abort connecting (and any backoff sleep); rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Hard limit over all hosts, retries and backoff together. */
  totalTimeoutMs?: number;
  /** Open a walsender session: `'database'` (logical) or `true` (physical). */
  replication?: 'database' | true;
  /** Source of randomness for jitter and load_balance_hosts (tests pass a fixed one). */
  random?: () => number;
}

export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

const SERVER_NO_SSL = /does not support SSL/i;

function noop(): void {}

/** A session that reached ReadyForQuery, with what the server reported at startup. */
interface Session {
  client: pg.Client;
  facts: Partial<SessionFacts>;
}

async function openSession(
  params: ConnParams,
  target: HostTarget,
  opts: ConnectOptions,
  timeoutMs: number,
  ssl: Parameters<typeof clientConfigFor>[3],
): Promise<Session> {
  const config = clientConfigFor(params, target, opts, ssl);
  // Our hard timer below is the authority; node-pg's own timer stays as a backstop.
  config.connectionTimeoutMillis = timeoutMs + 1000;
  const client = new pg.Client(config);
  // node-pg emits 'error' on an idle client whose socket dies; without a listener that
  // crashes the process. Failures still surface on the next query.
  client.on('error', noop);
  const facts: Partial<SessionFacts> = {};
  client.connection.on('parameterStatus', (msg: { parameterName: string; parameterValue: string }) => {
    if (msg.parameterName === 'in_hot_standby') facts.inHotStandby = msg.parameterValue === 'on';
    if (msg.parameterName === 'default_transaction_read_only')
      facts.defaultReadOnly = msg.parameterValue === 'on';
  });
  const label = targetLabel(target);
  try {
    await raceHard(client.connect(), client, {
      timeoutMs,
      signal: opts.signal,
      onTimeout: () =>
        new NodeUnreachableError(`connect to ${label} timed out after ${timeoutMs} ms`, {
          node: label,
          action: 'connect',
          reason: 'timeout',
          timeoutMs,
        }),
    });
  } catch (err) {
    void closeClient(client, 0);
    throw err;
  }
  return { client, facts };
}

/** Opens one host, handling sslmode=prefer by retrying in plain text when TLS is refused. */
async function openTarget(
  params: ConnParams,
  target: HostTarget,
  opts: ConnectOptions,
  timeoutMs: number,
): Promise<Session> {
  const ssl = sslFor(params, target);
  if (ssl !== 'prefer') return openSession(params, target, opts, timeoutMs, ssl);
  const started = Date.now();
  try {
    return await openSession(params, target, opts, timeoutMs, { rejectUnauthorized: false });
  } catch (err) {
    if (!(err instanceof Error) || !SERVER_NO_SSL.test(err.message)) throw err;
    const left = timeoutMs - (Date.now() - started);
    return openSession(params, target, opts, Math.max(1, left), false);
  }
}

/** Fills in facts the server did not report at startup (it always does on 14+). */
async function completeFacts(
  session: Session,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<SessionFacts> {
  const { client, facts } = session;
  const show = async (name: string): Promise<boolean> => {
    // SHOW works in every session kind, walsenders included.
    const res = await raceHard(client.query(`SHOW ${name}`), client, {
      timeoutMs,
      signal,
      onTimeout: () => new NodeUnreachableError(`SHOW ${name} timed out`, { reason: 'timeout' }),
    });
    return res.rows[0]?.[name] === 'on';
  };
  return {
    inHotStandby: facts.inHotStandby ?? (await show('in_hot_standby')),
    defaultReadOnly: facts.defaultReadOnly ?? (await show('default_transaction_read_only')),
  };
}

function mismatch(label: string, attrs: TargetSessionAttrs, facts: SessionFacts): PgfleetError {
  const what = facts.inHotStandby
    ? 'a standby'
    : facts.defaultReadOnly
      ? 'a read-only primary'
      : 'a read-write primary';
  return new PgfleetError(
    'TARGET_SESSION_ATTRS_MISMATCH',
    `connect to ${label}: server is ${what}, not acceptable for target_session_attrs=${attrs}`,
    { node: label, action: 'connect', targetSessionAttrs: attrs, ...facts },
  );
}

/** Transient failures are worth another round; a wrong password or missing database is not. */
export function isRetryableConnectError(err: PgfleetError): boolean {
  if (err instanceof NodeUnreachableError) return true;
  if (err.code === 'TARGET_SESSION_ATTRS_MISMATCH') return true;
  const sqlState = err.details.sqlState;
  return sqlState === SqlState.TOO_MANY_CONNECTIONS || sqlState === SqlState.CANNOT_CONNECT_NOW;
}

function summarise(errors: PgfleetError[], labels: string[]): PgfleetError {
  if (errors.length === 1) return errors[0]!;
  // A permanent error (bad password, unknown database) is the actionable one.
  const permanent = errors.find((e) => !isRetryableConnectError(e));
  if (permanent) return permanent;
  const reasons = errors.map((e) => e.message).join('; ');
  return new NodeUnreachableError(
    `connect failed: none of ${labels.join(', ')} accepted the connection (${reasons})`,
    { action: 'connect', hosts: labels, reasons: errors.map((e) => e.code) },
    { cause: new AggregateError(errors) },
  );
}

/**
 * Connects to the first host of `conninfo` that answers and satisfies its
 * target_session_attrs, like libpq: hosts in order (shuffled with load_balance_hosts=random),
 * each under a hard per-host timeout. With `retry`, whole rounds repeat after jittered
 * backoff while every failure is transient. Errors are PgfleetErrors naming host:port,
 * never the password.
 */
export async function connect(conninfo: string | ConnParams, opts: ConnectOptions = {}): Promise<pg.Client> {
  const params = typeof conninfo === 'string' ? parseConninfo(conninfo) : conninfo;
  const random = opts.random ?? Math.random;
  const attrs = parseTargetSessionAttrs(params.target_session_attrs);
  const targets = resolveTargets(params);
  const perHost = connectTimeoutFor(params, opts) ?? DEFAULT_CONNECT_TIMEOUT_MS;
  const deadline =
    opts.totalTimeoutMs === undefined ? Number.POSITIVE_INFINITY : Date.now() + opts.totalTimeoutMs;
  const attempts = Math.max(1, opts.retry?.attempts ?? 1);
  const policy: BackoffPolicy | undefined = opts.retry && {
    baseDelayMs: opts.retry.baseDelayMs,
    maxDelayMs: opts.retry.maxDelayMs,
  };
  const timedOut = (labels: string[]) =>
    new NodeUnreachableError(
      `connect to ${labels.join(', ')} timed out after ${opts.totalTimeoutMs} ms in total`,
      {
        action: 'connect',
        hosts: labels,
        reason: 'timeout',
        timeoutMs: opts.totalTimeoutMs,
      },
    );

  let errors: PgfleetError[] = [];
  for (let attempt = 1; attempt <= attempts; attempt++) {
    const ordered = orderTargets(targets, params, random);
    const labels = ordered.map(targetLabel);
    errors = [];
    // prefer-standby: libpq makes a second pass accepting any server; keeping the first
    // usable non-standby session open gives the same answer without reconnecting.
    let fallback: pg.Client | undefined;
    for (const target of ordered) {
      opts.signal?.throwIfAborted();
      const left = deadline - Date.now();
      if (left <= 0) throw timedOut(labels);
      const timeoutMs = Math.min(perHost, left);
      const label = targetLabel(target);
      let session: Session;
      try {
        session = await openTarget(params, target, opts, timeoutMs);
      } catch (err) {
        if (opts.signal?.aborted) throw opts.signal.reason;
        errors.push(toPgfleetError(err, { node: label, action: 'connect' }));
        continue;
      }
      if (attrs === 'any') return session.client;
      let facts: SessionFacts;
      try {
        facts = await completeFacts(session, Math.min(perHost, deadline - Date.now()), opts.signal);
      } catch (err) {
        void closeClient(session.client, 0);
        if (opts.signal?.aborted) throw opts.signal.reason;
        errors.push(toPgfleetError(err, { node: label, action: 'connect' }));
        continue;
      }
      if (sessionMatches(attrs, facts, 1)) {
        if (fallback) void closeClient(fallback);
        return session.client;
      }
      if (!fallback && sessionMatches(attrs, facts, 2)) fallback = session.client;
      else void closeClient(session.client);
      errors.push(mismatch(label, attrs, facts));
    }
    if (fallback) return fallback;
    const retryable = errors.every(isRetryableConnectError);
    if (!retryable || attempt === attempts || !policy) break;
    const delay = backoffDelay(attempt, policy, random);
    if (Date.now() + delay >= deadline) throw timedOut(labels);
    await sleep(delay, opts.signal);
  }
  throw summarise(errors, targets.map(targetLabel));
}

/**
 * node-pg ClientConfig for the first host of `conninfo`, for libraries that build their own
 * client (the replication stream): same password lookup, settings and TLS rules as connect(),
 * except that sslmode=prefer connects in plain text (no fallback inside one client).
 */
export function pgClientConfig(
  conninfo: string | ConnParams,
  opts: ClientConfigOptions = {},
): PgClientConfig {
  const params = typeof conninfo === 'string' ? parseConninfo(conninfo) : conninfo;
  const target = resolveTargets(params)[0] as HostTarget;
  const ssl = sslFor(params, target);
  return clientConfigFor(params, target, opts, ssl === 'prefer' ? false : ssl);
}

/** Runs `fn` with a fresh connection and always closes it afterwards. */
export async function withConnection<T>(
  conninfo: string | ConnParams,
  opts: ConnectOptions,
  fn: (client: pg.Client) => Promise<T>,
): Promise<T> {
  const client = await connect(conninfo, opts);
  try {
    return await fn(client);
  } finally {
    await closeClient(client);
  }
}
