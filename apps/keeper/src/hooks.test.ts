import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { HookRunner } from './hooks.js';

const logger = pino({ level: 'silent' });

describe('HookRunner', () => {
  it('runs the hook with the documented environment variables', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'keeper-hooks-'));
    const out = join(dir, 'env.txt');
    const runner = new HookRunner(
      {
        onPromote: `env | grep '^PGFLEET_' | sort > ${out}`,
        timeoutMs: 5000,
      },
      logger,
    );
    const res = await runner.run('promote', {
      node: 'b',
      role: 'primary',
      oldRole: 'standby',
      timeline: 2,
      reason: 'promoting: primary unreachable 3/3',
    });
    expect(res?.exitCode).toBe(0);
    expect(readFileSync(out, 'utf8').trim().split('\n')).toEqual([
      'PGFLEET_EVENT=promote',
      'PGFLEET_NODE=b',
      'PGFLEET_OLD_ROLE=standby',
      'PGFLEET_REASON=promoting: primary unreachable 3/3',
      'PGFLEET_ROLE=primary',
      'PGFLEET_TIMELINE=2',
    ]);
  });

  it('runs hooks one at a time in order and kills one that overruns its timeout', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'keeper-hooks-'));
    const out = join(dir, 'order.txt');
    const runner = new HookRunner(
      {
        onDegrade: `sleep 0.2; echo "$PGFLEET_EVENT" >> ${out}`,
        onRestore: `echo "$PGFLEET_EVENT" >> ${out}`,
        timeoutMs: 5000,
      },
      logger,
    );
    const ctx = { node: 'a', role: 'primary', reason: 'x' };
    const a = runner.run('degrade', ctx);
    const b = runner.run('restore', ctx);
    await Promise.all([a, b]);
    expect(readFileSync(out, 'utf8')).toBe('degrade\nrestore\n');

    const slow = new HookRunner({ onFence: 'sleep 5', timeoutMs: 100 }, logger);
    const res = await slow.run('fence', ctx);
    expect(res).toMatchObject({ timedOut: true, exitCode: null, signal: 'SIGKILL' });
  });

  it('does nothing for an event without a hook and reports a failing one', async () => {
    const runner = new HookRunner({ onRoleChange: 'exit 3', timeoutMs: 1000 }, logger);
    expect(await runner.run('promote', { node: 'a', role: 'primary', reason: '' })).toBeUndefined();
    expect((await runner.run('role_change', { node: 'a', role: 'primary', reason: '' }))?.exitCode).toBe(3);
  });
});
