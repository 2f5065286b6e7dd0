#!/usr/bin/env node
import { redactConninfo } from '@pgfleet/connection';
import { EXIT, main } from './cli-main.js';

// The entry point: exit codes are documented in cli-help.ts. The exit code is set rather than
// forced with process.exit so that pending log and output writes drain first.
main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`pgfleet-mm: ${redactConninfo(String((err as Error)?.stack ?? err))}\n`);
    process.exitCode = EXIT.FAILURE;
  },
);
