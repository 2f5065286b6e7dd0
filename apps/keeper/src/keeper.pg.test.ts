import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Sandbox, SandboxNode } from '@pgfleet/sandbox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KeeperHandle } from './keeper.js';
import { get } from './test-support/http.js';
import {
  createPair,
  FAILURES,
  INTERVAL,
  keeperPorts,
  pairConfig,
  type Side,
  startTestKeeper,
  teardown,
  timing,
} from './test-support/keeper-pair.js';
import { until } from './test-support/until.js';

const TOKEN = 'keeper-test-token';
const SYNC = 'ANY 1 (b)';

describe('keeper pair on real servers (primary a, standby b, sync ANY 1 (b))', () => {
  let sb: Sandbox;
  let a: SandboxNode;
  let b: SandboxNode;
  let ka: KeeperHandle;
  let kb: KeeperHandle;
  let hookDir: string;

  beforeAll(async () => {
    const pair = await createPair({
      name: 'keeper-test',
      primary: { settings: { wal_receiver_status_interval: '1s' } },
      setupSql: 'CREATE TABLE ledger (id int PRIMARY KEY, at timestamptz DEFAULT now())',
    });
    ({ sb, a, b } = pair);
    hookDir = mkdtempSync(join(tmpdir(), 'keeper-hooks-'));
    const hooks = (node: Side) => ({
      onPromote: `env | grep '^PGFLEET_' | sort > ${join(hookDir, 'tmp.env')} && mv ${join(hookDir, 'tmp.env')} ${join(hookDir, `${node}-promote.env`)}; echo x >> ${join(hookDir, `${node}-promote.count`)}`,
      onDegrade: `echo "$PGFLEET_REASON" >> ${join(hookDir, `${node}-degrade.log`)}`,
    });
    const opts = {
      common: {
        ...timing,
        syncStandbyNames: SYNC,
        syncRestoreLag: '1MiB',
        startupGrace: '5s',
        http: { token: TOKEN },
        log: { level: 'debug' },
      },
      ports: await keeperPorts(),
      side: (side: Side) => ({ hooks: hooks(side) }),
    };
    ka = await startTestKeeper(pairConfig(pair, 'a', opts), 'ka');
    kb = await startTestKeeper(pairConfig(pair, 'b', opts), 'kb');
  });

  afterAll(() => teardown(sb, [ka, kb]));

  it('turns the configured synchronous replication on and serves Patroni-style health checks', async () => {
    await until('sync restored on a', async () => {
      const [row] = await a.query<{ s: string }>("SELECT current_setting('synchronous_standby_names') AS s");
      return row?.s === SYNC;
    });
    const rows = await until('b streaming as quorum standby', async () => {
      const r = await a.query<{ sync_state: string }>(
        "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'b' AND state = 'streaming'",
      );
      return r[0]?.sync_state === 'quorum' ? r : undefined;
    });
    expect(rows).toHaveLength(1);
    await until('b keeper sees itself streaming', () => kb.status().streaming);
    expect(await get(`${ka.url}/primary`)).toBe(200);
    expect(await get(`${kb.url}/primary`)).toBe(503);
    expect(await get(`${kb.url}/replica`)).toBe(200);
    expect(await get(`${kb.url}/replica?lag=1MB`)).toBe(200);
    expect(await get(`${ka.url}/replica`)).toBe(503);
    expect(ka.status()).toMatchObject({
      role: 'primary',
      sync: { degraded: false },
      counters: { promotions: 0 },
    });
    await until(
      'b keeper sees itself synchronous at its primary',
      () => kb.status().sync.observation === 'sync',
    );
    expect(kb.status().role).toBe('standby');
  });

  it('degrades sync when the standby is killed, so commits proceed, and never promotes', async () => {
    await a.query('INSERT INTO ledger (id) VALUES (1)');
    await b.kill();
    const started = Date.now();
    // This commit waits for a synchronous standby that is gone, until the keeper degrades.
    await a.query('INSERT INTO ledger (id) VALUES (2)', [], { timeoutMs: 30_000 });
    const stalledMs = Date.now() - started;
    expect(stalledMs).toBeLessThan(INTERVAL * FAILURES + 2000);
    const [row] = await a.query<{ s: string }>("SELECT current_setting('synchronous_standby_names') AS s");
    expect(row?.s).toBe('');
    await until('a keeper counts the degrade', () => ka.status().counters.degrades === 1);
    expect(ka.status()).toMatchObject({
      role: 'primary',
      sync: { degraded: true },
      counters: { promotions: 0 },
    });
    expect(kb.status().counters.promotions).toBe(0);
    expect(ka.status().decision?.reason ?? '').toMatch(/degrad/);
    await until('onDegrade hook ran', () => existsSync(join(hookDir, 'a-degrade.log')));
    expect(readFileSync(join(hookDir, 'a-degrade.log'), 'utf8')).toMatch(
      /degrading synchronous replication: /,
    );
  });

  it('restores sync automatically once the standby streams again', async () => {
    const restoresBefore = ka.status().counters.restores;
    await b.start();
    await until('sync restored after b came back', async () => {
      const [row] = await a.query<{ s: string }>("SELECT current_setting('synchronous_standby_names') AS s");
      return row?.s === SYNC;
    });
    // (the server runs with the names a moment before the keeper's own check returns)
    await until('a keeper counts the restore', () => ka.status().counters.restores === restoresBefore + 1);
    expect(ka.status().sync.degraded).toBe(false);
    // Sync really works again: the commit is on b once acknowledged.
    await a.query('INSERT INTO ledger (id) VALUES (3)');
    await until('b keeper sees sync at its primary', () => kb.status().sync.observation === 'sync');
    expect(kb.status().role).toBe('standby');
  });

  it('promotes the standby quickly when the primary is killed, with every acknowledged row', async () => {
    await until('b promotable', () => kb.status().sync.observation === 'sync' && kb.status().lagBytes === 0);
    await a.query('INSERT INTO ledger (id) SELECT g FROM generate_series(10, 110) g');
    const killedAt = Date.now();
    await a.kill();
    await until(
      'b accepts writes',
      async () => {
        await b.query('INSERT INTO ledger (id) VALUES (1000)', [], { timeoutMs: 1000 });
        return true;
      },
      INTERVAL * FAILURES + 5000,
    );
    const rtoMs = Date.now() - killedAt;
    expect(rtoMs).toBeLessThan(INTERVAL * FAILURES + 2000);
    const [row] = await b.query<{ n: string }>('SELECT count(*) AS n FROM ledger WHERE id < 1000');
    expect(Number(row?.n)).toBe(3 + 101);
    await until('kb reports primary', () => kb.status().role === 'primary');
    expect(kb.status().counters.promotions).toBe(1);
    expect(kb.status().timeline).toBe(2);
    expect(await get(`${kb.url}/primary`)).toBe(200);
    await until('onPromote hook ran', () => existsSync(join(hookDir, 'b-promote.env')));
    const env = readFileSync(join(hookDir, 'b-promote.env'), 'utf8');
    expect(env).toContain('PGFLEET_EVENT=promote');
    expect(env).toContain('PGFLEET_NODE=b');
    expect(env).toContain('PGFLEET_ROLE=primary');
    expect(env).toContain('PGFLEET_OLD_ROLE=standby');
    expect(env).toContain('PGFLEET_TIMELINE=2');
    expect(env).toMatch(/PGFLEET_REASON=promoting: primary unreachable/);
    await sleep(INTERVAL * 3);
    expect(readFileSync(join(hookDir, 'b-promote.count'), 'utf8')).toBe('x\n');
    // Alone now, the new primary runs degraded: commits do not wait for the dead old primary.
    expect(kb.status().sync.degraded).toBe(true);
    console.log(`keeper failover: primary SIGKILL → first write on b in ${rtoMs} ms`);
  });

  it('fences the old primary when it comes back next to the promoted standby', async () => {
    await a.start();
    await until('a keeper fences a', () => ka.status().fenced, 10_000);
    expect(ka.status().fenceReason).toMatch(/peer is primary on newer timeline 2 > 1/);
    await expect(a.query('CREATE TABLE split_brain (id int)', [], { timeoutMs: 5000 })).rejects.toMatchObject(
      {
        code: '25006',
      },
    );
    expect(await get(`${ka.url}/primary`)).toBe(503);
    expect(await get(`${kb.url}/primary`)).toBe(200);
  });
});
