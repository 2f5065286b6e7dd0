import { freePort, type NodeOptions, Sandbox, type SandboxNode } from '@pgfleet/sandbox';
import pino from 'pino';
import { type KeeperConfig, parseConfig } from '../config.js';
import { type KeeperHandle, startKeeper } from '../keeper.js';

/**
 * The fixture of the keeper `*.pg.test.ts` files: a sandbox with primary `a` and its
 * streaming standby `b`, and the configs of the two keepers that watch them.
 */

export const major = process.env.PGFLEET_PG_VERSION ? Number(process.env.PGFLEET_PG_VERSION) : undefined;

/** Keeper period, failure threshold and probe timeout most of the tests run with. */
export const INTERVAL = 300;
export const FAILURES = 3;
export const CONNECT_TIMEOUT = 250;
export const timing = {
  interval: `${INTERVAL}ms`,
  failures: FAILURES,
  connectTimeout: `${CONNECT_TIMEOUT}ms`,
};

/** Keeper logs go to stdout with KEEPER_TEST_LOG=1, else nowhere. */
export const logger = pino({ level: process.env.KEEPER_TEST_LOG ? 'debug' : 'silent' });

export type Side = 'a' | 'b';

export interface KeeperPair {
  sb: Sandbox;
  a: SandboxNode;
  b: SandboxNode;
}

export interface KeeperPairOptions {
  /** Sandbox name. */
  name: string;
  /** Options of the primary `a`. */
  primary?: NodeOptions;
  /** SQL run on `a` before `b` is cloned from it. */
  setupSql?: string;
}

/** Starts primary `a` and clones standby `b` from it (the sandbox is destroyed if that fails). */
export async function createPair(opts: KeeperPairOptions): Promise<KeeperPair> {
  const sb = await Sandbox.create({ name: opts.name, major });
  try {
    const a = await sb.startNode('a', opts.primary);
    if (opts.setupSql) await a.query(opts.setupSql);
    const b = await sb.createStandby('b', a);
    return { sb, a, b };
  } catch (err) {
    await sb.destroy();
    throw err;
  }
}

/** Two free ports for the keepers' HTTP servers. */
export async function keeperPorts(): Promise<Record<Side, number>> {
  return { a: await freePort(), b: await freePort() };
}

export interface PairConfigOptions {
  /** Settings both keepers share (interval, failures, http.token, ...). */
  common: Record<string, unknown>;
  /**
   * HTTP ports of both keepers: each listens on its own (with `common.http`) and gets the
   * other's `peer.keeperUrl`, the fast path. Without them `common.http` stays as it is and
   * there is no keeperUrl.
   */
  ports?: Record<Side, number>;
  /** URL keeper `from` uses to reach keeper `to` on `port`; by default 127.0.0.1:`port`. */
  keeperUrl?: (from: string, to: string, port: number) => string;
  /** Settings of one side only, applied last. */
  side?: (side: Side) => Record<string, unknown>;
}

/**
 * The config of the keeper next to `side`: its own node directly, the other node through
 * the sandbox proxy of party `keeper-<side>` (so the sandbox can partition them).
 */
export function pairConfig(pair: KeeperPair, side: Side, opts: PairConfigOptions): KeeperConfig {
  const other: Side = side === 'a' ? 'b' : 'a';
  const self = `keeper-${side}`;
  const { ports } = opts;
  const url = opts.keeperUrl ?? ((_from: string, _to: string, port: number) => `http://127.0.0.1:${port}`);
  const http = opts.common.http as Record<string, unknown> | undefined;
  return parseConfig({
    ...opts.common,
    node: { name: side, conninfo: pair[side].conninfo() },
    peer: {
      name: other,
      conninfo: pair[other].conninfo({ from: self }),
      ...(ports ? { keeperUrl: url(self, `keeper-${other}`, ports[other]) } : {}),
    },
    ...(ports ? { http: { ...http, listen: `127.0.0.1:${ports[side]}` } } : {}),
    ...opts.side?.(side),
  });
}

/** Starts a keeper logging as `{ test: tag }`. */
export function startTestKeeper(config: KeeperConfig, tag: string): Promise<KeeperHandle> {
  return startKeeper(config, { logger: logger.child({ test: tag }) });
}

/** Stops the keepers that were started, then the sandbox. */
export async function teardown(sb: Sandbox | undefined, keepers: Array<KeeperHandle | undefined>) {
  await Promise.all(keepers.map((k) => k?.stop()));
  await sb?.destroy();
}
