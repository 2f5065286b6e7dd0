import { describe, expect, it } from 'vitest';
import type { TargetTable } from '../apply/target-table.js';
import { UNCHANGED_TOAST } from '../decode/messages.js';
import { parseDeadLetterRef, replayedChange } from './replay.js';

const target: TargetTable = {
  columns: new Map([
    ['id', { type: 'bigint', identityAlways: true, generated: false }],
    ['v', { type: 'text', identityAlways: false, generated: false }],
    ['big', { type: 'text', identityAlways: false, generated: false }],
    ['twice', { type: 'bigint', identityAlways: false, generated: true }],
  ]),
  uniqueKey: ['id'],
};

describe('replayedChange', () => {
  it('rebuilds an update whose new row lacks an unchanged TOAST column, keyed on the target key', () => {
    const { table, msg } = replayedChange('s', 't', target, {
      kind: 'update',
      old: { id: '7' },
      new: { id: '7', v: 'x' },
    });
    expect(table.columns.map((c) => [c.name, c.isKey, c.identityAlways])).toEqual([
      ['id', true, true],
      ['v', false, false],
    ]);
    expect(table.keyIndexes).toEqual([0]);
    expect(table.unsentColumns).toEqual(['big']);
    expect(msg).toEqual({ tag: 'update', relationId: 0, key: null, old: ['7', null], newTuple: ['7', 'x'] });
    const full = replayedChange('s', 't', target, {
      kind: 'update',
      old: { id: '7', v: 'a', big: 'b' },
      new: { id: '7', v: 'x' },
    });
    expect(full.msg).toMatchObject({ newTuple: ['7', 'x', UNCHANGED_TOAST] });
  });
  it('keeps SQL NULL apart from a missing column in inserts and deletes', () => {
    expect(
      replayedChange('s', 't', target, { kind: 'insert', old: null, new: { id: '1', v: null } }).msg,
    ).toEqual({
      tag: 'insert',
      relationId: 0,
      newTuple: ['1', null],
    });
    expect(replayedChange('s', 't', target, { kind: 'delete', old: { id: '1' }, new: null }).msg).toEqual({
      tag: 'delete',
      relationId: 0,
      key: null,
      old: ['1'],
    });
  });
  it('names a column the target no longer has', () => {
    expect(() =>
      replayedChange('s', 't', target, { kind: 'insert', old: null, new: { id: '1', gone: 'x' } }),
    ).toThrow(/column "gone" of s\.t no longer exists/);
  });
  it('matches on every recorded column when the target has no key', () => {
    const { table } = replayedChange(
      's',
      't',
      { ...target, uniqueKey: null },
      {
        kind: 'delete',
        old: { id: '1', v: 'a' },
        new: null,
      },
    );
    expect(table.identityFull).toBe(true);
    expect(table.keyIndexes).toEqual([0, 1]);
  });
});

describe('parseDeadLetterRef', () => {
  it.each<[string, string | undefined, { node: string; id: string } | null]>([
    ['b:12', undefined, { node: 'b', id: '12' }],
    ['12', 'b', { node: 'b', id: '12' }],
    ['b:12', 'c', { node: 'b', id: '12' }],
    ['12', undefined, null],
    ['b:x', undefined, null],
    ['B:1', undefined, null],
  ])('%s (--node %s)', (text, node, expected) => {
    expect(parseDeadLetterRef(text, node)).toEqual(expected);
  });
});
