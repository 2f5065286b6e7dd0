import type { TestProject } from 'vitest/node';
import { Sandbox } from './sandbox.js';
import './vitest.js';

/**
 * Vitest globalSetup for `*.pg.test.ts`: one logical-ready server for the whole run, on the
 * major named by PGFLEET_PG_VERSION (default: the newest found).
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const sb = await Sandbox.create({ name: 'vitest' });
  const node = await sb.startNode('shared', { logical: true });
  const f = node.facts();
  project.provide('pgServer', { conninfo: node.conninfo(), uri: node.uri(), major: node.major, ...f });
  return async () => {
    await sb.destroy();
  };
}
