import { describe, expect, it } from 'vitest';
import { parseCommandLine, UsageError } from './args.js';

const g = { booleans: ['json', 'force'], aliases: { c: 'config' } };

describe('parseCommandLine', () => {
  it('splits command, positionals, valued and boolean flags', () => {
    expect(parseCommandLine(['status', '--json', '--url=http://x:1', 'extra'], g)).toEqual({
      command: 'status',
      positionals: ['extra'],
      flags: { url: 'http://x:1' },
      bools: new Set(['json']),
    });
  });

  it('reads short aliases, --version and -h whatever the command', () => {
    const a = parseCommandLine(['run', '-c', 'k.yaml', '--interval', '500ms', '-h'], g);
    expect(a.flags).toEqual({ config: 'k.yaml', interval: '500ms' });
    expect(a.bools).toEqual(new Set(['help']));
    expect(parseCommandLine(['--version'], g).bools).toEqual(new Set(['version']));
    expect(parseCommandLine(['-V'], g).command).toBeUndefined();
  });

  it('names the option that is wrong', () => {
    expect(() => parseCommandLine(['run', '--config'], g)).toThrow(/--config needs a value/);
    expect(() => parseCommandLine(['run', '-x'], g)).toThrow(UsageError);
    expect(() => parseCommandLine(['run', '--json=yes'], g)).toThrow(/--json takes no value/);
  });

  it('treats everything after -- as positionals', () => {
    expect(parseCommandLine(['x', '--', '--json'], g).positionals).toEqual(['--json']);
  });
});
