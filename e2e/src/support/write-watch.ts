import pg from 'pg';
import type { WriteAttempt } from './write-ledger.js';

/**
 * The adversarial watchers: each holds one session to its target (a server directly, or a
 * load balancer) and tries one INSERT every `everyMs`, like a client that keeps its
 * connection, reconnecting only when the session breaks. Every attempt is recorded with the
 * server that acknowledged it (its port) and the server's clock_timestamp() of the row.
 */

export const LEDGER_DDL = `CREATE TABLE IF NOT EXISTS ledger (
  writer text NOT NULL,
  n int NOT NULL,
  at timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (writer, n))`;

const INSERT = `INSERT INTO ledger (writer, n) VALUES ($1, $2)
  RETURNING (extract(epoch FROM at) * 1000)::float8 AS at, current_setting('port')::int AS port`;

export interface WriteTarget {
  writer: string;
  /** This client's connect timeout (default: the watch's). */
  connectTimeoutMs?: number;
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
}

export interface ConnectAttempt {
  writer: string;
  startedAt: number;
  doneAt: number;
  ok: boolean;
  error?: string;
}

export interface WriteWatch {
  readonly attempts: WriteAttempt[];
  /** Every (re)connection, for tracing where the time of an outage went. */
  readonly connects: ConnectAttempt[];
  stop(): Promise<WriteAttempt[]>;
}

export interface WriteWatchOptions {
  /** Server port → node name, to tell who took a write that came through a proxy. */
  nodeByPort: Record<number, string>;
  everyMs?: number;
  /** A write hanging this long is given up (its session is cut); it was not acknowledged. */
  writeTimeoutMs?: number;
  connectTimeoutMs?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)));

function cut(client: pg.Client): void {
  (
    client as unknown as { connection?: { stream?: { destroy?: () => void } } }
  ).connection?.stream?.destroy?.();
  client.end().catch(() => {});
}

export function startWriteWatch(targets: WriteTarget[], opts: WriteWatchOptions): WriteWatch {
  const attempts: WriteAttempt[] = [];
  const connects: ConnectAttempt[] = [];
  const every = opts.everyMs ?? 50;
  const writeTimeout = opts.writeTimeoutMs ?? 10_000;
  let stopped = false;

  async function run(t: WriteTarget): Promise<void> {
    let client: pg.Client | null = null;
    let n = 0;
    while (!stopped) {
      const tick = Date.now();
      if (!client) {
        const c = new pg.Client({
          host: t.host,
          port: t.port,
          user: t.user,
          password: t.password,
          database: t.database,
          application_name: `watch-${t.writer}`,
          connectionTimeoutMillis: t.connectTimeoutMs ?? opts.connectTimeoutMs ?? 1000,
        });
        c.on('error', () => {});
        const startedAt = Date.now();
        try {
          await c.connect();
          client = c;
          connects.push({ writer: t.writer, startedAt, doneAt: Date.now(), ok: true });
        } catch (err) {
          connects.push({
            writer: t.writer,
            startedAt,
            doneAt: Date.now(),
            ok: false,
            error: (err as Error).message,
          });
          cut(c);
          await sleep(tick + every - Date.now());
          continue;
        }
      }
      const attempt: WriteAttempt = { writer: t.writer, n: ++n, sentAt: Date.now(), doneAt: 0, ok: false };
      const session = client;
      let timer: NodeJS.Timeout | undefined;
      try {
        const res = await Promise.race([
          session.query(INSERT, [t.writer, attempt.n]),
          new Promise<never>((_, reject) => {
            timer = setTimeout(
              () => reject(Object.assign(new Error('write timed out'), { code: 'TIMEOUT' })),
              writeTimeout,
            );
          }),
        ]);
        const row = res.rows[0] as { at: number; port: number };
        attempt.ok = true;
        attempt.serverAt = Number(row.at);
        attempt.node = opts.nodeByPort[Number(row.port)] ?? `port ${row.port}`;
      } catch (err) {
        const e = err as { code?: string; message?: string };
        attempt.code = e.code ?? 'ERROR';
        attempt.error = e.message ?? String(err);
        // A read-only refusal leaves a usable session; anything else may not have.
        if (attempt.code !== '25006') {
          cut(session);
          client = null;
        }
      } finally {
        clearTimeout(timer);
      }
      attempt.doneAt = Date.now();
      attempts.push(attempt);
      await sleep(tick + every - Date.now());
    }
    if (client) cut(client);
  }

  const loops = targets.map((t) => run(t));
  return {
    attempts,
    connects,
    async stop() {
      stopped = true;
      await Promise.all(loops);
      return attempts;
    },
  };
}
