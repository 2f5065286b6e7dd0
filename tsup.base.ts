import { defineConfig, type Options } from 'tsup';

/** The one tsup setup every package and app builds with: ESM + .d.ts for Node 20. */
export function packageConfig(entry: string[] = ['src/index.ts'], extra: Options = {}) {
  return defineConfig({
    entry,
    format: ['esm'],
    dts: true,
    sourcemap: true,
    clean: true,
    target: 'node20',
    ...extra,
  });
}
