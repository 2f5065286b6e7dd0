#!/usr/bin/env node
import { redactConninfo } from '@pgfleet/connection';
import { EXIT_RUNTIME, main } from './cli-main.js';

// The only place that calls process.exit. Exit codes: see cli-main.ts (0 ok, 1 runtime, 2 usage/config).
main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`pgfleet-keeper: ${redactConninfo(String((err as Error)?.stack ?? err))}\n`);
    process.exit(EXIT_RUNTIME);
  },
);
