import { describe, expect, it } from 'vitest';
import type { RelationMessage } from '../decode/messages.js';
import { makeEdge } from '../naming.js';
import { applyTableFor, rowKey, type TargetTable } from './target-table.js';

const cols = (names: string[], keys: string[]) => names.map((name) => ({ name, isKey: keys.includes(name) }));

describe('rowKey', () => {
  it.each<
    [string, ReturnType<typeof cols>, RelationMessage['replicaIdentity'], string[] | null, number[], boolean]
  >([
    ['default identity: the columns the source marks', cols(['id', 'v'], ['id']), 'd', ['id'], [0], false],
    [
      'index identity: the columns the source marks',
      cols(['a', 'b', 'v'], ['a', 'b']),
      'i',
      null,
      [0, 1],
      false,
    ],
    [
      'FULL with a primary key on the target: matched on the key',
      cols(['v', 'id'], ['v', 'id']),
      'f',
      ['id'],
      [1],
      false,
    ],
    [
      'FULL with a two-column unique key',
      cols(['a', 'b', 'v'], ['a', 'b', 'v']),
      'f',
      ['b', 'a'],
      [1, 0],
      false,
    ],
    ['FULL without a key: every column', cols(['a', 'v'], ['a', 'v']), 'f', null, [0, 1], true],
    ['FULL whose key is not published: every column', cols(['v'], ['v']), 'f', ['id'], [0], true],
  ])('%s', (_n, columns, ri, uniqueKey, keyIndexes, identityFull) => {
    expect(rowKey(columns, ri, uniqueKey)).toEqual({ keyIndexes, identityFull });
  });
});

describe('applyTableFor', () => {
  const edge = makeEdge('a', 'b');
  const target: TargetTable = {
    columns: new Map([
      ['id', { type: 'bigint', identityAlways: true, generated: false }],
      ['region', { type: 'text', identityAlways: false, generated: false }],
      ['total', { type: 'numeric', identityAlways: false, generated: false }],
      ['twice', { type: 'numeric', identityAlways: false, generated: true }],
      ['note', { type: 'text', identityAlways: false, generated: false }],
    ]),
    uniqueKey: ['id'],
  };
  const msg: RelationMessage = {
    tag: 'relation',
    relationId: 1,
    schema: 'public',
    name: 'orders',
    replicaIdentity: 'f',
    columns: ['id', 'region', 'total'].map((name) => ({ name, typeOid: 0, typeMod: -1, isKey: true })),
  };
  it('keys a FULL table on its primary key, marks identity ALWAYS columns, keeps unsent plain columns', () => {
    const t = applyTableFor(edge, msg, target);
    expect(t.keyIndexes).toEqual([0]);
    expect(t.identityFull).toBe(false);
    expect(t.columns.map((c) => [c.name, c.isKey, c.identityAlways])).toEqual([
      ['id', true, true],
      ['region', false, false],
      ['total', false, false],
    ]);
    expect(t.unsentColumns).toEqual(['note']);
  });
  it('names the missing table or column', () => {
    expect(() => applyTableFor(edge, msg, null)).toThrow(/table public\.orders does not exist on b/);
    const extra = {
      ...msg,
      columns: [...msg.columns, { name: 'gone', typeOid: 0, typeMod: -1, isKey: false }],
    };
    expect(() => applyTableFor(edge, extra, target)).toThrow(
      /column "gone" of public\.orders exists on a but not on b/,
    );
  });
});
