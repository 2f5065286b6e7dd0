import { describe, expect, it } from 'vitest';
import { type ProgramHelp, renderCommandHelp, renderProgramHelp } from './help.js';

const program: ProgramHelp = {
  name: 'tool',
  tagline: 'does things',
  commands: [
    {
      name: 'sync',
      summary: 'sync the things',
      usage: ['sync --edge <a->b>'],
      options: [{ flag: '--edge <a->b>', text: 'which edge' }],
      examples: ['tool sync --edge a->b'],
    },
    { name: 'list', summary: 'list the things', usage: ['list'], examples: ['tool list'] },
  ],
  globalOptions: [{ flag: '--version', text: 'print the version' }],
  footer: 'Exit codes: 0 ok',
};

describe('help', () => {
  it('lists every command in the program help', () => {
    const text = renderProgramHelp(program);
    expect(text).toMatch(/^ {2}sync {2}sync the things$/m);
    expect(text).toMatch(/^ {2}list {2}list the things$/m);
    expect(text).toContain('Exit codes: 0 ok');
  });

  it("shows one command's usage, options and examples, not the others", () => {
    const text = renderCommandHelp(program, program.commands[0]!);
    expect(text).toMatch(/^ {2}tool sync --edge <a->b>$/m);
    expect(text).toMatch(/--edge <a->b> {2}which edge/);
    expect(text).toMatch(/^Examples:\n {2}tool sync --edge a->b$/m);
    expect(text).not.toContain('list the things');
  });
});
