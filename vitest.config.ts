import { defineConfig } from 'vitest/config';

// Workspace packages are resolved to their TypeScript sources (the "source" export
// condition), so tests never run against a stale dist/.
// (The rest is Vite's defaultServerConditions.)
const conditions = ['source', 'module', 'node', 'development|production'];

export default defineConfig({
  resolve: { conditions },
  ssr: { resolve: { conditions, externalConditions: ['source'] } },
  test: {
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['packages/*/src/**/*.test.ts', 'apps/*/src/**/*.test.ts', 'e2e/src/**/*.test.ts'],
          exclude: ['**/*.pg.test.ts', '**/*.etcd.test.ts', '**/*.e2e.test.ts', '**/node_modules/**'],
        },
      },
      {
        extends: true,
        test: {
          name: 'pg',
          include: ['packages/*/src/**/*.pg.test.ts', 'apps/*/src/**/*.pg.test.ts'],
          globalSetup: ['packages/sandbox/src/vitest-global-setup.ts'],
          testTimeout: 60_000,
          hookTimeout: 120_000,
          maxWorkers: 2,
        },
      },
      {
        // Real etcd clusters from the sandbox (Debian's etcd-server), no PostgreSQL: run once.
        extends: true,
        test: {
          name: 'etcd',
          include: ['packages/*/src/**/*.etcd.test.ts', 'apps/*/src/**/*.etcd.test.ts'],
          testTimeout: 60_000,
          hookTimeout: 60_000,
          maxWorkers: 2,
        },
      },
      {
        extends: true,
        test: {
          name: 'e2e',
          include: ['e2e/src/**/*.e2e.test.ts'],
          // Runs on containers only (the `containers` project); elsewhere it would only skip.
          exclude: ['e2e/src/harness/containers.e2e.test.ts', '**/node_modules/**'],
          testTimeout: 180_000,
          hookTimeout: 180_000,
          fileParallelism: false,
        },
      },
      {
        extends: true,
        test: {
          // The containers subset (issue 12): the same scenario files as on the sandbox, run
          // with E2E_PROVIDER=containers by scripts/test.mjs once a runtime answers.
          name: 'containers',
          include: [
            'e2e/src/harness/*.e2e.test.ts',
            'e2e/src/keeper/freeze.e2e.test.ts',
            'e2e/src/multimaster/mesh.e2e.test.ts',
          ],
          testTimeout: 180_000,
          hookTimeout: 300_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
