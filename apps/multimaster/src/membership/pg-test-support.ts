import { Sandbox, type SandboxNode, slotsConfirmed } from '@pgfleet/sandbox';
import { type RawConfig, type ResolvedConfig, resolveConfig } from '../config.js';

/** Shared by the membership pg tests (and streaming.pg.test.ts). */

/** A mesh of `nodes` replicating every table of schema app, quick to retry; `apply` as given. */
export function meshConfig(nodes: SandboxNode[], apply?: RawConfig['apply']): ResolvedConfig {
  return resolveConfig({
    nodes: nodes.map((n) => ({ name: n.name, conninfo: n.conninfo() })),
    tables: ['app.*'],
    http: { listen: false },
    statusIntervalMs: 200,
    reconnect: { baseDelayMs: 50, maxDelayMs: 500 },
    ...(apply ? { apply } : {}),
  });
}

/** Every pgfleet slot on every node confirmed at least the WAL its node had written. */
export function quiesce(nodes: SandboxNode[]): Promise<void> {
  return slotsConfirmed(nodes, { prefix: 'pgfleet\\_', timeoutMs: 60_000 });
}

/** A sandbox with logical nodes a, b and c (autovacuum off), `ddl` run on each. */
export async function startThreeNodes(
  ddl: string,
): Promise<{ sb: Sandbox; a: SandboxNode; b: SandboxNode; c: SandboxNode }> {
  const sb = await Sandbox.create();
  const [a, b, c] = (await sb.startLogicalNodes(['a', 'b', 'c'], { autovacuum: false })) as [
    SandboxNode,
    SandboxNode,
    SandboxNode,
  ];
  for (const n of [a, b, c]) await n.query(ddl);
  return { sb, a, b, c };
}
