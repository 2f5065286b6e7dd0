import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { describe, expect, it } from 'vitest';
import { freePort, freePortSync, portPlan } from './ports.js';

const ephemeralLow = Number(
  readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0],
);

function listen(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(port, '127.0.0.1', () => resolve(srv));
  });
}

describe('port plan', () => {
  it.each([
    [{}, 0],
    [{ VITEST_POOL_ID: '1' }, 1],
    [{ VITEST_POOL_ID: '7' }, 7],
    [{ VITEST_POOL_ID: '9' }, 1],
    [{ VITEST_POOL_ID: 'x' }, 0],
  ])('env %o walks slice %i, below the ephemeral range', (env, slice) => {
    const plan = portPlan(env, 4242, 32_768);
    expect(plan).not.toBeNull();
    expect(plan!.size).toBe(Math.floor((32_768 - 10_000) / 8));
    expect(plan!.base).toBe(10_000 + slice * plan!.size);
    expect(plan!.base + plan!.size).toBeLessThanOrEqual(32_768);
    expect(plan!.offset).toBeGreaterThanOrEqual(0);
    expect(plan!.offset).toBeLessThan(plan!.size);
  });

  it('two processes of one worker start their walks at different offsets', () => {
    expect(portPlan({}, 1000)!.offset).not.toBe(portPlan({}, 1001)!.offset);
  });

  it('leaves the pick to the kernel when the ephemeral range starts too low to slice', () => {
    expect(portPlan({}, 1, 10_500)).toBeNull();
  });
});

describe('freePort / freePortSync (real sockets on 127.0.0.1)', () => {
  it('hands out distinct ports below the ephemeral range that can be bound', async () => {
    const ports = [await freePort(), await freePort(), freePortSync(), await freePort(), freePortSync()];
    expect(new Set(ports).size).toBe(ports.length);
    for (const p of ports) {
      expect(p).toBeGreaterThanOrEqual(10_000);
      expect(p).toBeLessThan(ephemeralLow);
      (await listen(p)).close();
    }
  });

  it('skips a port that is taken', async () => {
    // The next port of the walk is the one after the last handed out; take a few ahead.
    const last = await freePort();
    const held = await Promise.all([1, 2, 3].map((d) => listen(last + d).catch(() => null)));
    try {
      const next = await freePort();
      const sync = freePortSync();
      for (const p of [next, sync])
        expect(held.some((s) => s && (s.address() as { port: number }).port === p)).toBe(false);
      (await listen(next)).close();
    } finally {
      for (const s of held) s?.close();
    }
  });
});
