import { connect as netConnect, type Socket } from 'node:net';
import { resolveTargets, targetLabel } from './client-config.js';
import { type ConnParams, parseConninfo } from './conninfo.js';

/**
 * Does the server take new connections right now? Sends the 8-byte SSLRequest and waits for
 * the one-byte answer ('S' or 'N'), then hangs up: no authentication, no backend work.
 *
 * The answer comes from a backend the postmaster forked for this connection
 * (src/backend/postmaster/postmaster.c: BackendStartup, then ProcessStartupPacket in the
 * child), so it proves what a full probe proves about the postmaster: it accepts and forks.
 * A postmaster that is stopped or hung leaves the request unanswered even while its existing
 * sessions keep working, which is exactly what a long-lived session cannot see. A server in
 * crash recovery or starting up still answers (its backends refuse later, at startup).
 * Hanging up before the startup packet is not logged by the server ("incomplete startup
 * packet" is only reported when some bytes arrived).
 */

export type HandshakeProbeResult =
  | { answered: true; latencyMs: number }
  | { answered: false; latencyMs: number; cause: 'timeout' | 'refused' | 'reset' | 'error'; reason: string };

const SSL_REQUEST = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]); // length 8, code 80877103

export function probeHandshake(
  conninfo: string | ConnParams,
  opts: { timeoutMs: number; now?: () => number },
): Promise<HandshakeProbeResult> {
  const now = opts.now ?? (() => performance.now());
  const started = now();
  const params = typeof conninfo === 'string' ? parseConninfo(conninfo) : conninfo;
  const target = resolveTargets(params)[0]!;
  const label = targetLabel(target);
  const address = target.hostaddr ?? target.host;
  return new Promise((resolve) => {
    let done = false;
    let socket: Socket;
    const finish = (r: HandshakeProbeResult) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(r);
    };
    const fail = (cause: 'timeout' | 'refused' | 'reset' | 'error', reason: string) =>
      finish({ answered: false, latencyMs: now() - started, cause, reason: `${label}: ${reason}` });
    // setImmediate: after a stall of our own event loop the timer and the answer are both due;
    // timers run before I/O callbacks, so give an answer already received its chance first.
    const timer = setTimeout(
      () => setImmediate(() => fail('timeout', `no answer to a new connection within ${opts.timeoutMs} ms`)),
      opts.timeoutMs,
    );
    socket = address.startsWith('/')
      ? netConnect({ path: `${address}/.s.PGSQL.${target.port}` })
      : netConnect({ host: address, port: target.port });
    socket.on('connect', () => socket.write(SSL_REQUEST));
    socket.once('data', () => finish({ answered: true, latencyMs: now() - started }));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      const code = err.code ?? '';
      if (code === 'ECONNREFUSED' || code === 'ENOENT') fail('refused', `connection refused (${code})`);
      else if (code === 'ECONNRESET' || code === 'EPIPE') fail('reset', `connection reset (${code})`);
      else fail('error', `${err.message}${code ? ` (${code})` : ''}`);
    });
    socket.on('close', () => fail('reset', 'connection closed before the server answered'));
  });
}
