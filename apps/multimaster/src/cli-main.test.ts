import { captureStdio } from '@pgfleet/cli/testing';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MM_HELP } from './cli-help.js';
import { EXIT, main } from './cli-main.js';

const capture = captureStdio;

afterEach(() => vi.restoreAllMocks());

describe('pgfleet-mm conventions', () => {
  it('prints the version and exits 0', async () => {
    const io = capture();
    expect(await main(['--version'], {})).toBe(EXIT.OK);
    expect(io.out()).toMatch(/^pgfleet-mm \d+\.\d+\.\d+\n$/);
  });

  it.each(MM_HELP.commands.map((c) => c.name))(
    '%s --help shows its own usage and an example, not the global help',
    async (command) => {
      const io = capture();
      expect(await main([command, '--help'], {})).toBe(EXIT.OK);
      expect(io.out()).toMatch(new RegExp(`^pgfleet-mm ${command}: `));
      expect(io.out()).toMatch(new RegExp(`^Examples:\\n {2}pgfleet-mm ${command}`, 'm'));
      expect(io.out()).not.toMatch(/^Commands:/m);
    },
  );

  it('documents exit code 3 for every command that returns it', async () => {
    const io = capture();
    expect(await main(['--help'], {})).toBe(EXIT.OK);
    expect(io.out()).toMatch(
      /^ {2}3 {2}a precondition is not met[\s\S]*init[\s\S]*add-node[\s\S]*sequences/m,
    );
  });

  it.each<[string, string[], RegExp]>([
    ['no command', [], /missing command/],
    ['unknown command', ['merge-everything'], /unknown command "merge-everything"/],
    ['unexpected argument', ['status', 'now'], /unexpected argument "now"/],
    ['unknown option', ['status', '--colour', 'red'], /unknown option --colour/],
    ['no configuration', ['status'], /PGFLEET_MM_NODES/],
  ])('%s exits 2 with the reason', async (_name, argv, message) => {
    const io = capture();
    expect(await main(argv, {})).toBe(EXIT.USAGE);
    expect(io.err()).toMatch(message);
  });
});
