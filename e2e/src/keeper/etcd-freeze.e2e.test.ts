import { EtcdCluster } from '@pgfleet/sandbox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { etcdAvailable } from '../support/etcd-members.js';
import { type EtcdTrialResult, runEtcdTrial } from '../support/etcd-trial.js';

/**
 * Issue 10: the primary's whole host (server and keeper process) frozen for ~4 s on a
 * 3-node cluster on a real etcd, then thawed. The leader key runs out while it is frozen; a
 * standby wins it and promotes, the other follows. When the host comes back, its keeper
 * must find its lease gone and fence the server before it takes a write: the watchers on
 * every server prove it.
 */

const major = process.env.PGFLEET_PG_VERSION ? Number(process.env.PGFLEET_PG_VERSION) : undefined;

function explain(r: EtcdTrialResult): string {
  const { attempts: _a, logs, ...facts } = r;
  const tail = Object.entries(logs)
    .map(([n, lines]) => `--- ${n}\n${lines.slice(-25).join('\n')}`)
    .join('\n');
  return `${JSON.stringify(facts, null, 1)}\n${tail}`;
}

describe.skipIf(!etcdAvailable())('keeper on etcd: host freeze (keepers as processes)', () => {
  let etcd: EtcdCluster;

  beforeAll(async () => {
    etcd = await EtcdCluster.start({ name: 'keeper-freeze-e2e' });
  });

  afterAll(async () => {
    await etcd?.destroy();
  });

  it("primary's host frozen and thawed: one standby promotes, the other follows, the thawed primary is fenced and takes no write", async () => {
    const r = await runEtcdTrial(etcd, 'host-freeze', {
      ...(major ? { major } : {}),
      echo: process.env.KEEPER_E2E_LOG === '1',
    });
    console.log(
      `keeper etcd e2e (PostgreSQL ${r.major}) host-freeze: ${r.leader} promoted, first write ${r.ttfwMs} ms after the freeze, ` +
        `two-writer moments ${r.twoWriters.count}, old primary's writes after the new one's first ${r.oldAfterNew}, ` +
        `old keeper ${JSON.stringify(r.old)}, write on the old server: ${r.oldServerWrite}`,
    );
    const why = explain(r);
    expect(r.promoted, why).toHaveLength(1);
    expect(r.leader, why).toBe(r.promoted[0]);
    expect(r.followerFollows, why).toBe(true);
    expect(r.twoWriters.count, why).toBe(0);
    expect(r.ttfwMs, why).not.toBeNull();
    // The old primary took writes before the freeze, and none after the new primary's first.
    expect(r.lastOldAt, why).not.toBeNull();
    expect(r.oldAfterNew, why).toBe(0);
    // Thawed, its keeper answers and has given up writing; its server refuses a new write.
    expect(r.old, why).not.toBeNull();
    expect(r.old!.fenced || !r.old!.writable, why).toBe(true);
    expect(r.old!.writable, why).toBe(false);
    expect(r.oldServerWrite, why).not.toBe('accepted');
  });
});
