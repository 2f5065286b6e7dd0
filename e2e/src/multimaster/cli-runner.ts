import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../..');
const CLI = ['--conditions=source', '--import', 'tsx', 'apps/multimaster/src/cli.ts'];

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `pgfleet-mm` from source, as a user would run the built binary; `undefined` unsets a variable. */
export function pgfleetMm(args: string[], env: Record<string, string | undefined> = {}): Promise<CliResult> {
  const merged: Record<string, string> = {};
  for (const [k, v] of Object.entries({ ...process.env, ...env })) if (v !== undefined) merged[k] = v;
  return new Promise((res) => {
    execFile(
      process.execPath,
      [...CLI, ...args],
      { cwd: ROOT, env: merged, timeout: 120_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        res({ code, stdout, stderr });
      },
    );
  });
}
