import { Sandbox, type SandboxNode } from '@pgfleet/sandbox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from './connect.js';
import { parseConninfo, withConninfo } from './conninfo.js';
import { NodeUnreachableError } from './errors.js';
import { probe } from './probe.js';

// Needs a real standby, so this file runs its own two-node sandbox.
const major = process.env.PGFLEET_PG_VERSION
  ? (Number(process.env.PGFLEET_PG_VERSION) as 15 | 17)
  : undefined;

let sb: Sandbox;
let primary: SandboxNode;
let standby: SandboxNode;

/** One conninfo listing the standby first, then the primary. */
function both(attrs: string): string {
  const p = parseConninfo(primary.conninfo());
  return withConninfo(standby.conninfo(), {
    host: `${p.host},${p.host}`,
    port: `${standby.port},${primary.port}`,
    target_session_attrs: attrs,
  });
}

async function serverPort(conninfo: string): Promise<number> {
  const client = await connect(conninfo, { connectTimeoutMs: 5000 });
  try {
    return Number((await client.query('SHOW port')).rows[0].port);
  } finally {
    await client.end();
  }
}

beforeAll(async () => {
  sb = await Sandbox.create({ major });
  primary = await sb.startNode('p');
  standby = await sb.createStandby('s', primary);
});

afterAll(async () => {
  await sb?.destroy();
});

describe('target_session_attrs against a primary and a streaming standby', () => {
  it.each([
    ['any', 'standby'],
    ['read-write', 'primary'],
    ['primary', 'primary'],
    ['read-only', 'standby'],
    ['standby', 'standby'],
    ['prefer-standby', 'standby'],
  ] as const)('%s picks the %s', async (attrs, expected) => {
    const port = await serverPort(both(attrs));
    expect(port).toBe(expected === 'primary' ? primary.port : standby.port);
  });

  it('prefer-standby falls back to the primary when no standby answers', async () => {
    const conninfo = withConninfo(primary.conninfo(), { target_session_attrs: 'prefer-standby' });
    expect(await serverPort(conninfo)).toBe(primary.port);
  });

  it('standby fails with a mismatch when only the primary is listed', async () => {
    const conninfo = withConninfo(primary.conninfo(), { target_session_attrs: 'standby' });
    await expect(connect(conninfo)).rejects.toMatchObject({ code: 'TARGET_SESSION_ATTRS_MISMATCH' });
  });
});

describe('probe against a frozen server', () => {
  it('returns ok:false within the timeout while the standby is SIGSTOPped, ok again after SIGCONT', async () => {
    standby.pause();
    try {
      const started = performance.now();
      const res = await probe(standby.conninfo(), { timeoutMs: 500 });
      expect(performance.now() - started).toBeLessThan(1500);
      expect(res.ok).toBe(false);
      if (!res.ok) {
        expect(res.error).toBeInstanceOf(NodeUnreachableError);
        expect(res.error.message).not.toContain(standby.facts().password);
      }
    } finally {
      standby.resume();
    }
    const again = await probe(standby.conninfo(), { timeoutMs: 5000 });
    expect(again.ok).toBe(true);
  });

  it('read-write skips a frozen first host within connectTimeoutMs', async () => {
    standby.pause();
    try {
      const started = performance.now();
      const client = await connect(both('read-write'), { connectTimeoutMs: 400 });
      expect(performance.now() - started).toBeLessThan(2000);
      expect(Number((await client.query('SHOW port')).rows[0].port)).toBe(primary.port);
      await client.end();
    } finally {
      standby.resume();
    }
  });
});
