/**
 * Help text in one shape for both CLIs: `<program> --help` lists the commands, and
 * `<program> <command> --help` shows that command's own usage, options and examples.
 */

export interface OptionHelp {
  /** e.g. `--lsn <lsn>` or `-c, --config <file>`. */
  flag: string;
  text: string;
}

export interface CommandHelp {
  name: string;
  /** One line for the command list. */
  summary: string;
  /** Usage lines after the program name, e.g. `status [--json] [--url <keeper url>]`. */
  usage: string[];
  /** What the command does, in a few sentences (optional). */
  description?: string;
  options?: OptionHelp[];
  examples: string[];
}

export interface ProgramHelp {
  name: string;
  tagline: string;
  commands: CommandHelp[];
  /** Options every command takes. */
  globalOptions: OptionHelp[];
  /** Trailing sections (configuration sources, exit codes), already formatted. */
  footer: string;
}

function optionLines(options: OptionHelp[]): string[] {
  const width = Math.min(30, Math.max(...options.map((o) => o.flag.length)));
  return options.flatMap((o) => {
    const [first = '', ...rest] = o.text.split('\n');
    if (o.flag.length > width)
      return [
        `  ${o.flag}`,
        `  ${' '.repeat(width)}  ${first}`,
        ...rest.map((r) => `  ${' '.repeat(width)}  ${r}`),
      ];
    return [`  ${o.flag.padEnd(width)}  ${first}`, ...rest.map((r) => `  ${' '.repeat(width)}  ${r}`)];
  });
}

export function renderProgramHelp(p: ProgramHelp): string {
  const width = Math.max(...p.commands.map((c) => c.name.length));
  return [
    `${p.name}: ${p.tagline}`,
    '',
    'Usage:',
    `  ${p.name} <command> [options]`,
    `  ${p.name} <command> --help     options and examples of one command`,
    `  ${p.name} --version`,
    '',
    'Commands:',
    ...p.commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'Options for every command:',
    ...optionLines(p.globalOptions),
    '',
    p.footer.trimEnd(),
    '',
  ].join('\n');
}

export function renderCommandHelp(p: ProgramHelp, c: CommandHelp): string {
  const lines = [
    `${p.name} ${c.name}: ${c.summary}`,
    '',
    'Usage:',
    ...c.usage.map((u) => `  ${p.name} ${u}`),
  ];
  if (c.description) lines.push('', ...c.description.trim().split('\n'));
  if (c.options?.length) lines.push('', 'Options:', ...optionLines(c.options));
  lines.push('', 'Options for every command:', ...optionLines(p.globalOptions));
  lines.push('', 'Examples:', ...c.examples.map((e) => `  ${e}`), '');
  return lines.join('\n');
}

export function findCommand(p: ProgramHelp, name: string | undefined): CommandHelp | undefined {
  return name === undefined ? undefined : p.commands.find((c) => c.name === name);
}
