import { once } from 'node:events';
import net from 'node:net';
import { testServer } from '@pgfleet/sandbox/vitest';
import { afterAll, describe, expect, it } from 'vitest';
import { probeHandshake } from './handshake-probe.js';

const server = testServer();

describe('probeHandshake', () => {
  const sockets: net.Socket[] = [];
  const blackHole = net.createServer((s) => sockets.push(s)); // accepts, never answers
  afterAll(() => {
    for (const s of sockets) s.destroy();
    blackHole.close();
  });

  it('a running server answers the SSLRequest without authentication', async () => {
    const wrongPassword = `host=${server.host} port=${server.port} user=nobody password=wrong`;
    const r = await probeHandshake(wrongPassword, { timeoutMs: 2000 });
    expect(r).toMatchObject({ answered: true });
    expect(r.latencyMs).toBeLessThan(2000);
  });

  it('nothing listening: refused at once', async () => {
    const s = net.createServer().listen(0, '127.0.0.1');
    await once(s, 'listening');
    const { port } = s.address() as net.AddressInfo;
    s.close();
    await once(s, 'close');
    const r = await probeHandshake(`host=127.0.0.1 port=${port}`, { timeoutMs: 2000 });
    expect(r).toMatchObject({ answered: false, cause: 'refused' });
  });

  it('a listener that never answers (a stopped postmaster): timeout, bounded by timeoutMs', async () => {
    blackHole.listen(0, '127.0.0.1');
    await once(blackHole, 'listening');
    const { port } = blackHole.address() as net.AddressInfo;
    const r = await probeHandshake(`host=127.0.0.1 port=${port}`, { timeoutMs: 150 });
    expect(r).toMatchObject({ answered: false, cause: 'timeout' });
    expect(r.latencyMs).toBeGreaterThanOrEqual(140);
    expect(r.latencyMs).toBeLessThan(1000);
    if (!r.answered) expect(r.reason).toContain(`127.0.0.1:${port}`);
  });
});
