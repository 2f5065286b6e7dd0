import { readFileSync } from 'node:fs';

/**
 * The version of the package whose module is at `moduleUrl`, read from the package.json one
 * directory up (`src/cli.ts` and `dist/cli.js` both sit one level below it).
 */
export function packageVersion(moduleUrl: string): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', moduleUrl), 'utf8')) as {
      version?: unknown;
    };
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}
