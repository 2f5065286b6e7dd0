import { inject } from 'vitest';
import type { ProvidedPgServer } from './types.js';

declare module 'vitest' {
  export interface ProvidedContext {
    pgServer: ProvidedPgServer;
  }
}

/**
 * The shared logical-ready server that the `pg` test project's global setup started
 * (see vitest-global-setup.ts). Use a schema or table name unique to your test file.
 */
export function testServer(): ProvidedPgServer {
  return inject('pgServer');
}
