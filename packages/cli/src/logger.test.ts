import { mkdtempSync, openSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createLogger, resolveLogFormat } from './logger.js';

function logTo(format: 'pretty' | 'json' | 'auto', isTerminal: boolean): string {
  const file = join(mkdtempSync(join(tmpdir(), 'pgfleet-log-')), 'log');
  const fd = openSync(file, 'w');
  const log = createLogger({ level: 'info', format, fd, isTerminal });
  log
    .child({ component: 'keeper', node: 'a' })
    .warn({ decision: 'fence', lagBytes: 0 }, 'fencing: peer promoted');
  log.debug('not shown at info');
  return readFileSync(file, 'utf8');
}

describe('createLogger', () => {
  it('writes one readable line with time, level, component, node, message and key fields', () => {
    const text = logTo('pretty', false);
    expect(text.trim().split('\n')).toHaveLength(1);
    expect(text).toMatch(
      /^\[\d\d:\d\d:\d\d\.\d{3}\] WARN: keeper a: fencing: peer promoted .*"decision":"fence"/,
    );
    expect(text).not.toContain('"component"');
    expect(text).not.toContain('\u001b['); // no colours when not on a terminal
  });

  it('writes JSON lines in json format and in auto format off a terminal', () => {
    for (const text of [logTo('json', true), logTo('auto', false)]) {
      const line = JSON.parse(text.trim());
      expect(line).toMatchObject({
        level: 40,
        component: 'keeper',
        node: 'a',
        decision: 'fence',
        msg: 'fencing: peer promoted',
      });
    }
  });

  it('picks pretty on a terminal in auto format', () => {
    expect(resolveLogFormat('auto', true)).toBe('pretty');
    expect(resolveLogFormat('auto', false)).toBe('json');
    expect(resolveLogFormat('json', true)).toBe('json');
  });
});
