import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { pause } from '@pgfleet/connection';
import { DcsError, DcsErrorCode } from './errors.js';

/**
 * etcd's v3 API through its JSON gateway (`POST /v3/<service>/<method>`, base64 keys and values,
 * int64 as strings), the way Patroni's etcd3 module talks to etcd. Over node:http with a
 * keep-alive agent: a keeper holding a lease this way stays at ~49 MB RSS where the grpc-js
 * client (`etcd3` package) needs ~68 MB and fetch/undici ~65 MB (measured idle, Node 20).
 *
 * Every call has a hard deadline and an optional AbortSignal. Endpoints are tried in turn,
 * starting with the last one that answered, until one answers or the deadline passes; only
 * then does the call fail, with DCS_UNAVAILABLE. Needs etcd 3.4+ (the `/v3` prefix).
 */

/** How the keeper proves who it is to etcd: TLS (server CA, client certificate) and etcd's own users. */
export interface GatewaySecurity {
  /** PEM text: the CA that signed the members' server certificates (https:// endpoints). */
  ca?: string;
  /** PEM text: client certificate and key, for etcd's --client-cert-auth. */
  cert?: string;
  key?: string;
  /** etcd user and password (`etcdctl auth enable`): a token from /v3/auth/authenticate on every call. */
  username?: string;
  password?: string;
}

export interface GatewayCallOptions {
  /** Absolute deadline in `performance.now()` milliseconds. */
  deadline: number;
  signal?: AbortSignal;
}

/** gRPC status codes etcd uses for "not now, try again or elsewhere" (etcdserver/api/v3rpc/rpctypes). */
const TRANSIENT_GRPC_CODES = new Set([
  1, // CANCELED
  4, // DEADLINE_EXCEEDED
  14, // UNAVAILABLE: no leader, leader changed, request timed out, server stopped
]);

/** etcd's NOT_FOUND, used for "requested lease not found". */
export const GRPC_NOT_FOUND = 5;
/** UNAUTHENTICATED: the auth token expired or etcd restarted (simple tokens live in memory). */
const GRPC_UNAUTHENTICATED = 16;

/** Each attempt gets at least this much of the remaining time (or all of it, when less remains). */
const MIN_ATTEMPT_MS = 250;
/** Pause between rounds over every endpoint (an election takes about one election timeout). */
const ROUND_PAUSE_MS = 50;

type Attempt =
  | { kind: 'ok'; body: unknown }
  | { kind: 'rpc-error'; grpcCode: number; message: string; httpStatus: number }
  | { kind: 'unreachable'; reason: string };

export class EtcdGateway {
  readonly endpoints: readonly string[];
  private readonly urls: URL[];
  private preferred = 0;
  private readonly httpAgent = new HttpAgent({ keepAlive: true, maxSockets: 4 });
  private readonly httpsAgent: HttpsAgent;
  private readonly tls: { ca?: string; cert?: string; key?: string };
  /** The etcd auth token in use (null: none yet, or auth is off). */
  private token: string | null = null;
  private authenticating: Promise<void> | null = null;

  constructor(
    endpoints: readonly string[],
    private readonly security: GatewaySecurity = {},
  ) {
    const { ca, cert, key } = security;
    this.tls = { ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}) };
    this.httpsAgent = new HttpsAgent({ keepAlive: true, maxSockets: 4, ...this.tls });
    if (endpoints.length === 0) throw new DcsError(DcsErrorCode.DCS_REJECTED, 'no etcd endpoints configured');
    this.urls = endpoints.map((e) => {
      const u = new URL(e);
      if (u.protocol !== 'http:' && u.protocol !== 'https:') {
        throw new DcsError(DcsErrorCode.DCS_REJECTED, `etcd endpoint ${e} must be http:// or https://`);
      }
      return u;
    });
    this.endpoints = this.urls.map((u) => u.origin);
  }

  /** The endpoint that answered last (tried first next time). */
  get currentEndpoint(): string {
    return this.endpoints[this.preferred]!;
  }

  /**
   * POSTs `body` to `/v3<path>` and returns the parsed answer. Throws DcsError: DCS_UNAVAILABLE
   * when no endpoint answered before the deadline, DCS_REJECTED for etcd's own refusals
   * (`details.grpcCode`, `details.etcdMessage`), DCS_ABORTED when `signal` fired.
   */
  async call<T>(path: string, body: unknown, opts: GatewayCallOptions): Promise<T> {
    if (this.security.username === undefined) return this.callOnce<T>(path, body, opts);
    if (this.token === null) await this.authenticate(opts);
    try {
      return await this.callOnce<T>(path, body, opts);
    } catch (err) {
      // A token etcd no longer knows (it expired, or the member restarted): once more with a new one.
      if (!(err instanceof DcsError) || err.details?.grpcCode !== GRPC_UNAUTHENTICATED) throw err;
      this.token = null;
      await this.authenticate(opts);
      return this.callOnce<T>(path, body, opts);
    }
  }

  /** Gets a token for username/password (one request at a time, shared by concurrent calls). */
  private authenticate(opts: GatewayCallOptions): Promise<void> {
    this.authenticating ??= this.callOnce<{ token?: string }>(
      '/auth/authenticate',
      { name: this.security.username, password: this.security.password ?? '' },
      opts,
      false,
    )
      .then((r) => {
        if (!r.token)
          throw new DcsError(
            DcsErrorCode.DCS_REJECTED,
            `etcd gave no auth token to user ${this.security.username}: is auth enabled on the cluster?`,
          );
        this.token = r.token;
      })
      .catch((err: unknown) => {
        if (err instanceof DcsError && err.code === DcsErrorCode.DCS_REJECTED)
          throw new DcsError(
            DcsErrorCode.DCS_REJECTED,
            `etcd refused user ${this.security.username} (dcs.etcd.username / dcs.etcd.password): ${String(err.details?.etcdMessage ?? err.message)}`,
            { ...err.details },
          );
        throw err;
      })
      .finally(() => {
        this.authenticating = null;
      });
    return this.authenticating;
  }

  private async callOnce<T>(
    path: string,
    body: unknown,
    opts: GatewayCallOptions,
    withToken = true,
  ): Promise<T> {
    const payload = JSON.stringify(body);
    const started = performance.now();
    const failures: string[] = [];
    const n = this.urls.length;
    rounds: for (;;) {
      for (let i = 0; i < n; i++) {
        if (opts.signal?.aborted) throw aborted(path, opts.signal);
        const remaining = opts.deadline - performance.now();
        if (remaining <= 0) break rounds;
        const idx = (this.preferred + i) % n;
        const budget = Math.min(remaining, Math.max(remaining / (n - i), MIN_ATTEMPT_MS));
        const res = await this.attempt(this.urls[idx]!, path, payload, budget, opts.signal, withToken);
        if (res.kind === 'ok') {
          this.preferred = idx;
          return res.body as T;
        }
        if (opts.signal?.aborted) throw aborted(path, opts.signal);
        const where = this.endpoints[idx]!;
        if (res.kind === 'unreachable') {
          failures.push(`${where}: ${res.reason}`);
          continue;
        }
        if (TRANSIENT_GRPC_CODES.has(res.grpcCode)) {
          failures.push(`${where}: ${res.message}`);
          continue;
        }
        this.preferred = idx;
        throw new DcsError(DcsErrorCode.DCS_REJECTED, `etcd refused ${path} at ${where}: ${res.message}`, {
          endpoint: where,
          path,
          grpcCode: res.grpcCode,
          httpStatus: res.httpStatus,
          etcdMessage: res.message,
        });
      }
      const remaining = opts.deadline - performance.now();
      if (remaining <= 0) break;
      await pause(Math.min(ROUND_PAUSE_MS, remaining), opts.signal);
    }
    const tookMs = Math.round(performance.now() - started);
    throw new DcsError(
      DcsErrorCode.DCS_UNAVAILABLE,
      `etcd did not answer ${path} within ${tookMs} ms (${failures.slice(-n).join('; ') || 'no attempt fit in the deadline'})`,
      { path, endpoints: this.endpoints, failures: failures.slice(-n), tookMs },
    );
  }

  /**
   * Opens a streaming call (watch) on the endpoint that answered last and hands each message to
   * `onMessage` until it returns true ('matched'), the stream ends or fails ('ended'), or the
   * deadline passes or `signal` fires ('timeout'). A partitioned endpoint looks like a quiet
   * one: the caller learns about unreachability from its next ordinary call.
   */
  stream(
    path: string,
    body: unknown,
    opts: GatewayCallOptions & { onMessage: (message: Record<string, unknown>) => boolean },
  ): Promise<'matched' | 'ended' | 'timeout'> {
    const url = this.urls[this.preferred]!;
    const payload = JSON.stringify(body);
    return new Promise((resolve) => {
      let settled = false;
      const finish = (how: 'matched' | 'ended' | 'timeout') => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        opts.signal?.removeEventListener('abort', onAbort);
        req.destroy();
        resolve(how);
      };
      const https = url.protocol === 'https:';
      // Its own socket (no agent): a watch holds the connection open for its whole life.
      const req = (https ? httpsRequest : httpRequest)(
        {
          protocol: url.protocol,
          hostname: url.hostname,
          port: url.port,
          path: `/v3${path}`,
          method: 'POST',
          agent: false,
          ...(https ? this.tls : {}),
          headers: this.headers(payload, true),
        },
        (res) => {
          let buf = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            buf += chunk;
            for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
              const line = buf.slice(0, nl).trim();
              buf = buf.slice(nl + 1);
              const msg = line ? parseFirstObject(line) : undefined;
              if (!msg) continue;
              if (rpcErrorOf(msg)) return finish('ended');
              const inner = unwrapStream(msg);
              if (
                typeof inner === 'object' &&
                inner !== null &&
                opts.onMessage(inner as Record<string, unknown>)
              ) {
                return finish('matched');
              }
            }
          });
          res.on('end', () => finish('ended'));
          res.on('error', () => finish('ended'));
        },
      );
      const timer = setTimeout(() => finish('timeout'), Math.max(0, opts.deadline - performance.now()));
      const onAbort = () => finish('timeout');
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      req.on('error', () => finish('ended'));
      req.end(payload);
    });
  }

  private headers(payload: string, withToken: boolean): Record<string, string | number> {
    return {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(payload),
      ...(withToken && this.token !== null ? { authorization: this.token } : {}),
    };
  }

  /** Closes idle keep-alive sockets. */
  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }

  private attempt(
    url: URL,
    path: string,
    payload: string,
    budgetMs: number,
    signal: AbortSignal | undefined,
    withToken: boolean,
  ): Promise<Attempt> {
    return new Promise<Attempt>((resolve) => {
      let settled = false;
      const finish = (a: Attempt) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        resolve(a);
      };
      const https = url.protocol === 'https:';
      const req = (https ? httpsRequest : httpRequest)(
        {
          protocol: url.protocol,
          hostname: url.hostname,
          port: url.port,
          path: `/v3${path}`,
          method: 'POST',
          agent: https ? this.httpsAgent : this.httpAgent,
          headers: this.headers(payload, withToken),
        },
        (res) => readAnswer(res, finish),
      );
      // A black-holed endpoint never answers: the socket is destroyed at the attempt's budget,
      // so a partition costs one budget, never a TCP timeout.
      const timer = setTimeout(() => {
        req.destroy();
        finish({ kind: 'unreachable', reason: `no answer in ${Math.round(budgetMs)} ms` });
      }, budgetMs);
      const onAbort = () => {
        req.destroy();
        finish({ kind: 'unreachable', reason: 'aborted' });
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      req.on('error', (err: NodeJS.ErrnoException) =>
        finish({ kind: 'unreachable', reason: err.code ?? err.message }),
      );
      req.end(payload);
    });
  }
}

function readAnswer(res: IncomingMessage, finish: (a: Attempt) => void): void {
  const chunks: Buffer[] = [];
  res.on('data', (c: Buffer) => chunks.push(c));
  res.on('error', (err: NodeJS.ErrnoException) =>
    finish({ kind: 'unreachable', reason: err.code ?? err.message }),
  );
  res.on('end', () => {
    const text = Buffer.concat(chunks).toString('utf8');
    const status = res.statusCode ?? 0;
    const body = parseFirstObject(text);
    if (body === undefined) {
      if (status === 404) {
        finish({
          kind: 'rpc-error',
          grpcCode: 12,
          httpStatus: status,
          message: 'no v3 JSON gateway at /v3 (etcd 3.4 or newer is needed)',
        });
      } else if (status >= 500) {
        finish({ kind: 'unreachable', reason: `HTTP ${status}` });
      } else {
        finish({
          kind: 'rpc-error',
          grpcCode: 2,
          httpStatus: status,
          message: `unreadable answer (HTTP ${status})`,
        });
      }
      return;
    }
    const err = rpcErrorOf(body);
    if (err) finish({ kind: 'rpc-error', httpStatus: status, ...err });
    else if (status !== 200)
      finish({ kind: 'rpc-error', grpcCode: 2, httpStatus: status, message: `HTTP ${status}` });
    else finish({ kind: 'ok', body: unwrapStream(body) });
  });
}

/** The gateway answers unary calls with one object and streaming ones (keepalive) with `{"result": …}` lines. */
function parseFirstObject(text: string): Record<string, unknown> | undefined {
  const trimmed = text.trim();
  if (!trimmed) return undefined;
  for (const candidate of [trimmed, trimmed.split('\n')[0]!]) {
    try {
      const v: unknown = JSON.parse(candidate);
      if (typeof v === 'object' && v !== null) return v as Record<string, unknown>;
    } catch {
      // try the next form
    }
  }
  return undefined;
}

/** Unary errors: `{error, code, message}`; stream errors: `{error: {grpc_code, message}}`. */
function rpcErrorOf(body: Record<string, unknown>): { grpcCode: number; message: string } | undefined {
  const e = body.error;
  if (e === undefined) return undefined;
  if (typeof e === 'object' && e !== null) {
    const o = e as Record<string, unknown>;
    return { grpcCode: Number(o.grpc_code ?? o.code ?? 2), message: String(o.message ?? 'etcd error') };
  }
  return { grpcCode: Number(body.code ?? 2), message: String(body.message ?? e) };
}

function unwrapStream(body: Record<string, unknown>): unknown {
  return 'result' in body && typeof body.result === 'object' ? body.result : body;
}

function aborted(path: string, signal: AbortSignal): DcsError {
  return new DcsError(
    DcsErrorCode.DCS_ABORTED,
    `etcd call ${path} aborted`,
    { path },
    { cause: signal.reason },
  );
}
