import { connect } from '@pgfleet/connection';
import { Sandbox, type SandboxNode } from '@pgfleet/sandbox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  killServer,
  postmasterPid,
  processState,
  serverProcesses,
  terminateClientBackends,
} from './server-processes.js';

const major = process.env.PGFLEET_PG_VERSION ? Number(process.env.PGFLEET_PG_VERSION) : undefined;

/** A client's long-lived session: what keeps writing when only the postmaster is stopped. */
function holdSession(node: SandboxNode) {
  return connect(node.conninfo(), { applicationName: 'holder' });
}

describe('the local server through /proc: the fence that needs no postmaster', () => {
  let sb: Sandbox;
  let a: SandboxNode;
  let b: SandboxNode;
  beforeAll(async () => {
    sb = await Sandbox.create({ name: 'roles-procs', ...(major ? { major } : {}) });
    a = await sb.startNode('a');
    b = await sb.createStandby('b', a);
    await a.query('CREATE TABLE w (id serial PRIMARY KEY)');
  });
  afterAll(async () => {
    if (a.isRunning) a.resume();
    await sb?.destroy();
  });

  it('finds the postmaster from postmaster.pid, and nothing for a directory without a server', () => {
    expect(postmasterPid(a.dataDir)).toBe(a.pid);
    expect(postmasterPid(sb.root)).toBeNull();
  });

  it('tells client backends from walsenders and auxiliary processes', async () => {
    const holder = await holdSession(a);
    try {
      const procs = serverProcesses(a.dataDir);
      const kinds = (kind: string) => procs?.children.filter((p) => p.kind === kind) ?? [];
      expect(kinds('client').length).toBeGreaterThanOrEqual(1);
      expect(kinds('walsender')).toHaveLength(1);
      expect(
        kinds('auxiliary')
          .map((p) => p.title)
          .join('\n'),
      ).toMatch(/checkpointer/);
    } finally {
      await holder.end();
    }
  });

  it('postmaster stopped, sessions alive and writing: SIGTERM to client backends ends them, walsender stays', async () => {
    const holder = await holdSession(a);
    process.kill(a.pid!, 'SIGSTOP');
    try {
      // Signal delivery is asynchronous: the state turns T (stopped) a moment later.
      for (let i = 0; i < 100 && processState(a.pid!) !== 'T'; i++)
        await new Promise((r) => setTimeout(r, 5));
      expect(processState(a.pid!)).toBe('T');
      await holder.query('INSERT INTO w DEFAULT VALUES'); // what makes a stopped postmaster dangerous
      const signalled = terminateClientBackends(a.dataDir);
      expect(signalled.length).toBeGreaterThanOrEqual(1);
      await expect(holder.query('INSERT INTO w DEFAULT VALUES')).rejects.toThrow(/terminat/);
      expect(serverProcesses(a.dataDir)?.children.some((p) => p.kind === 'walsender')).toBe(true);
    } finally {
      process.kill(a.pid!, 'SIGCONT');
    }
    await a.query('SELECT 1'); // the server itself lives on
  });

  it('a whole server frozen: killServer leaves no process that could write when thawed', async () => {
    const holder = await holdSession(a);
    const before = serverProcesses(a.dataDir)!;
    a.pause();
    const killed = killServer(a.dataDir);
    expect(killed).toContain(before.postmaster.pid);
    for (const p of before.children) expect(killed).toContain(p.pid);
    await expect(holder.query('INSERT INTO w DEFAULT VALUES')).rejects.toThrow();
    for (let i = 0; i < 100 && a.isRunning; i++) await new Promise((r) => setTimeout(r, 20));
    expect(a.isRunning).toBe(false);
    expect(postmasterPid(a.dataDir)).toBeNull();
    expect(killServer(a.dataDir)).toEqual([]);
    // The standby keeps what a committed before: nothing to recover but the kill itself.
    expect(await b.query('SELECT 1 AS ok')).toEqual([{ ok: 1 }]);
  });
});
