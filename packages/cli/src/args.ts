import { PgfleetError } from '@pgfleet/connection';

/**
 * One command-line grammar for both apps: `<command> [positionals] [--flag value | --flag=value
 * | -x value | --boolean]`. Flags are collected by name without dashes; what a flag means is
 * decided later (a config key, a command option), where an unknown one is reported by name.
 */
export interface ParsedArgs {
  command: string | undefined;
  /** Positionals after the command. */
  positionals: string[];
  flags: Record<string, string>;
  bools: Set<string>;
}

export interface ArgGrammar {
  /** Flags that take no value (`--json`, `--force`...). `help` and `version` always are. */
  booleans: readonly string[];
  /** Short forms: `{ c: 'config', h: 'help' }`. */
  aliases?: Readonly<Record<string, string>>;
}

/** The command line itself is wrong (unknown short option, missing value). Exit code 2. */
export class UsageError extends PgfleetError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super('CLI_USAGE', message, details);
  }
}

export function parseCommandLine(argv: readonly string[], g: ArgGrammar): ParsedArgs {
  const booleans = new Set([...g.booleans, 'help', 'version']);
  const aliases: Record<string, string> = { h: 'help', V: 'version', ...g.aliases };
  const flags: Record<string, string> = {};
  const bools = new Set<string>();
  const positionals: string[] = [];
  let command: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    const long = arg.startsWith('--');
    const short = !long && /^-[A-Za-z]$/.test(arg);
    if (!long && !short) {
      if (command === undefined) command = arg;
      else positionals.push(arg);
      continue;
    }
    const body = arg.slice(long ? 2 : 1);
    const eq = body.indexOf('=');
    const raw = eq >= 0 ? body.slice(0, eq) : body;
    const name = short ? aliases[raw] : raw;
    if (name === undefined) throw new UsageError(`unknown option -${raw}`, { option: raw });
    if (booleans.has(name)) {
      if (eq >= 0) throw new UsageError(`option --${name} takes no value`, { option: name });
      bools.add(name);
      continue;
    }
    const value = eq >= 0 ? body.slice(eq + 1) : argv[++i];
    if (value === undefined) throw new UsageError(`option --${name} needs a value`, { option: name });
    flags[name] = value;
  }
  return { command, positionals, flags, bools };
}
