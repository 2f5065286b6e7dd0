import { once } from 'node:events';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { connect } from './connect.js';
import { NodeUnreachableError, type PgfleetError } from './errors.js';
import { probe } from './probe.js';

// These tests fake only the socket peer (no PostgreSQL needed): a server that never
// answers is exactly what a SIGSTOPped or partitioned node looks like to a client.

const servers: net.Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.close();
  }
});

interface FakePeer {
  port: number;
  accepted: number;
  closed: number;
}

/** Accepts connections and then does `behaviour` with each socket. */
async function fakePeer(behaviour: 'black-hole' | 'hang-up'): Promise<FakePeer> {
  const peer: FakePeer = { port: 0, accepted: 0, closed: 0 };
  const server = net.createServer((socket) => {
    peer.accepted++;
    socket.on('close', () => peer.closed++);
    socket.on('error', () => {});
    if (behaviour === 'hang-up') socket.destroy();
    // black-hole: read (and drop) what arrives, never answer; reading lets us see the FIN
    else socket.resume();
  });
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  peer.port = (server.address() as net.AddressInfo).port;
  return peer;
}

async function refusedPort(): Promise<number> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  server.close();
  await once(server, 'close');
  return port;
}

async function rejection(p: Promise<unknown>): Promise<PgfleetError> {
  try {
    await p;
  } catch (err) {
    return err as PgfleetError;
  }
  throw new Error('expected a rejection');
}

const secret = 'Sup3r-Secr3t';

describe('connect against fake peers', () => {
  it('fails fast with NodeUnreachableError on a refused port, naming host:port but not the password', async () => {
    const port = await refusedPort();
    const started = performance.now();
    const err = await rejection(connect(`host=127.0.0.1 port=${port} user=u password=${secret}`));
    expect(performance.now() - started).toBeLessThan(1000);
    expect(err).toBeInstanceOf(NodeUnreachableError);
    expect(err.details.reason).toBe('ECONNREFUSED');
    expect(err.message).toContain(`127.0.0.1:${port}`);
    expect(err.message).not.toContain(secret);
    expect(JSON.stringify(err.details)).not.toContain(secret);
  });

  it('gives up on a black-holed server after connectTimeoutMs and destroys the socket', async () => {
    const peer = await fakePeer('black-hole');
    const started = performance.now();
    const err = await rejection(
      connect(`host=127.0.0.1 port=${peer.port} user=u password=${secret}`, { connectTimeoutMs: 300 }),
    );
    const elapsed = performance.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(290);
    expect(elapsed).toBeLessThan(1000);
    expect(err).toBeInstanceOf(NodeUnreachableError);
    expect(err.details.reason).toBe('timeout');
    expect(err.message).toMatch(/timed out after 300 ms/);
    await expect.poll(() => peer.closed, { timeout: 1000 }).toBe(1);
  });

  it('honours connect_timeout from the conninfo (seconds, libpq minimum 2)', async () => {
    const peer = await fakePeer('black-hole');
    const started = performance.now();
    await rejection(connect(`host=127.0.0.1 port=${peer.port} connect_timeout=1`));
    const elapsed = performance.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(1990);
    expect(elapsed).toBeLessThan(3000);
  });

  it('stops at totalTimeoutMs across several black-holed hosts', async () => {
    const a = await fakePeer('black-hole');
    const b = await fakePeer('black-hole');
    const started = performance.now();
    const err = await rejection(
      connect(`host=127.0.0.1,127.0.0.1 port=${a.port},${b.port}`, {
        connectTimeoutMs: 250,
        totalTimeoutMs: 400,
      }),
    );
    const elapsed = performance.now() - started;
    expect(elapsed).toBeLessThan(800);
    expect(a.accepted).toBe(1);
    expect(b.accepted).toBe(1);
    expect(err).toBeInstanceOf(NodeUnreachableError);
  });

  it('tries every host in order and reports each when none answers', async () => {
    const refused = await refusedPort();
    const hole = await fakePeer('black-hole');
    const err = await rejection(
      connect(`host=127.0.0.1,127.0.0.1 port=${refused},${hole.port}`, { connectTimeoutMs: 200 }),
    );
    expect(hole.accepted).toBe(1);
    expect(err).toBeInstanceOf(NodeUnreachableError);
    expect(err.message).toContain(`127.0.0.1:${refused}`);
    expect(err.message).toContain(`127.0.0.1:${hole.port}`);
    expect(err.message).toMatch(/ECONNREFUSED/);
    expect(err.message).toMatch(/timed out/);
  });

  it('retries transient failures with backoff, attempts times', async () => {
    const peer = await fakePeer('hang-up');
    const started = performance.now();
    const err = await rejection(
      connect(`host=127.0.0.1 port=${peer.port}`, {
        retry: { attempts: 3, baseDelayMs: 100, maxDelayMs: 1000 },
        random: () => 0, // equal jitter with random 0: delays of 50 ms then 100 ms
      }),
    );
    expect(peer.accepted).toBe(3);
    expect(performance.now() - started).toBeGreaterThanOrEqual(140);
    expect(err).toBeInstanceOf(NodeUnreachableError);
  });

  it('aborts a hanging connect when the signal fires, with the signal reason', async () => {
    const peer = await fakePeer('black-hole');
    const ac = new AbortController();
    setTimeout(() => ac.abort(new Error('shutting down')), 100);
    const started = performance.now();
    const err = await rejection(connect(`host=127.0.0.1 port=${peer.port}`, { signal: ac.signal }));
    expect(performance.now() - started).toBeLessThan(1000);
    expect((err as Error).message).toBe('shutting down');
    await expect.poll(() => peer.closed, { timeout: 1000 }).toBe(1);
  });

  it('aborts a backoff sleep too', async () => {
    const peer = await fakePeer('hang-up');
    const ac = new AbortController();
    setTimeout(() => ac.abort(new Error('stop')), 150);
    const started = performance.now();
    const err = await rejection(
      connect(`host=127.0.0.1 port=${peer.port}`, {
        signal: ac.signal,
        retry: { attempts: 100, baseDelayMs: 10_000, maxDelayMs: 10_000 },
      }),
    );
    expect(performance.now() - started).toBeLessThan(1000);
    expect((err as Error).message).toBe('stop');
  });
});

describe('probe against fake peers', () => {
  it('returns ok:false within the timeout when the peer accepts and never answers', async () => {
    const peer = await fakePeer('black-hole');
    const started = performance.now();
    const res = await probe(`host=127.0.0.1 port=${peer.port} password=${secret}`, { timeoutMs: 300 });
    expect(performance.now() - started).toBeLessThan(800);
    expect(res.ok).toBe(false);
    expect(res.latencyMs).toBeGreaterThanOrEqual(290);
    if (!res.ok) {
      expect(res.error).toBeInstanceOf(NodeUnreachableError);
      expect(res.error.message).not.toContain(secret);
    }
    await expect.poll(() => peer.closed, { timeout: 1000 }).toBe(1);
  });

  it('returns ok:false for a refused port without throwing', async () => {
    const port = await refusedPort();
    const res = await probe(`host=127.0.0.1 port=${port}`, { timeoutMs: 1000 });
    expect(res.ok).toBe(false);
    if (!res.ok) expect(res.error.code).toBe('NODE_UNREACHABLE');
  });

  it('returns ok:false for an unparsable conninfo without throwing', async () => {
    const res = await probe('host=a bogus=1', { timeoutMs: 1000 });
    expect(res.ok).toBe(false);
    if (!res.ok) expect(res.error.code).toBe('CONNINFO_INVALID');
  });
});
