import type { Sandbox, SandboxNode } from '@pgfleet/sandbox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KeeperHandle } from './keeper.js';
import {
  createPair,
  type KeeperPair,
  pairConfig,
  startTestKeeper,
  teardown,
} from './test-support/keeper-pair.js';
import { until } from './test-support/until.js';

/**
 * Found in CI: a probe that straddled the primary's SIGKILL saw synchronous_standby_names set
 * but no walsender row for this standby (the walsender noticed the postmaster's death before
 * the backend answering the probe), took the standby for asynchronous, and it then refused to
 * fail over for good. Where no commit can be acknowledged without this standby, a missing row
 * does not make it miss acknowledged commits: it is 'required', and promotable.
 */
describe("standby keeper's reading of its own synchronous status", () => {
  let pair: KeeperPair;
  let sb: Sandbox;
  let a: SandboxNode;
  let b: SandboxNode;
  let kb: KeeperHandle | undefined;
  const observation = () => kb?.status().sync.observation;
  const setSync = async (names: string) => {
    await a.query(`ALTER SYSTEM SET synchronous_standby_names = '${names}'`);
    await a.query('SELECT pg_reload_conf()');
  };
  const setReceiver = async (conninfo: string) => {
    await b.query(`ALTER SYSTEM SET primary_conninfo = '${conninfo.replaceAll("'", "''")}'`);
    await b.query('SELECT pg_reload_conf()');
  };

  beforeAll(async () => {
    pair = await createPair({ name: 'keeper-sync-observation' });
    ({ sb, a, b } = pair);
  });

  afterAll(() => teardown(sb, [kb]));

  it("says 'required' when the primary names only this standby, 'async' when another could confirm", async () => {
    const [{ conninfo } = { conninfo: '' }] = await b.query<{ conninfo: string }>(
      "SELECT current_setting('primary_conninfo') AS conninfo",
    );
    expect(conninfo).not.toBe('');
    await setReceiver('');
    await until(
      'b streams no more',
      async () => (await a.query('SELECT 1 FROM pg_stat_replication')).length === 0,
    );
    await setSync('ANY 1 (a, b)');
    kb = await startTestKeeper(
      pairConfig(pair, 'b', { common: { interval: '200ms', syncStandbyNames: 'ANY 1 (a, b)' } }),
      'kb',
    );
    await until('kb sees itself required', () => observation() === 'required');

    await setSync('ANY 1 (a, b, c)');
    await until('kb sees itself asynchronous', () => observation() === 'async');

    await setReceiver(conninfo);
    // The primary's walsender row and this standby's own walreceiver are read apart.
    await until(
      'kb sees itself synchronous, and streaming',
      () => observation() === 'sync' && kb?.status().streaming,
    );
  });
});
