import { describe, expect, it } from 'vitest';
import { UNCHANGED_TOAST, type UpdateMessage } from '../decode/messages.js';
import { recordedChange } from './dead-letter-recorder.js';
import type { ApplyTable } from './statements.js';
import { keyChanged, oldObject } from './tuples.js';

const t: ApplyTable = {
  schema: 's',
  name: 't',
  columns: [
    { name: 'id', type: 'int', isKey: true },
    { name: 'v', type: 'text', isKey: false },
    { name: 'big', type: 'text', isKey: false },
  ],
  keyIndexes: [0],
  identityFull: false,
};
const upd = (
  key: UpdateMessage['key'],
  old: UpdateMessage['old'],
  newTuple: UpdateMessage['newTuple'],
): UpdateMessage => ({
  tag: 'update',
  relationId: 1,
  key,
  old,
  newTuple,
});

describe('keyChanged', () => {
  it.each<[string, UpdateMessage, boolean]>([
    ['no old tuple: the key did not change', upd(null, null, ['1', 'x', UNCHANGED_TOAST]), false],
    ['old key differs', upd(['1', null, null], null, ['2', 'x', 'y']), true],
    ['old key sent but equal', upd(['1', null, null], null, ['1', 'x', 'y']), false],
    ['FULL old row, same key', upd(null, ['1', 'a', 'b'], ['1', 'x', UNCHANGED_TOAST]), false],
    ['FULL old row, new key', upd(null, ['1', 'a', 'b'], ['3', 'a', 'b']), true],
  ])('%s', (_n, msg, expected) => {
    expect(keyChanged(t, msg)).toBe(expected);
  });
});

describe('recorded images', () => {
  it("records only the key of an old key tuple ('K'), whose other positions are placeholders", () => {
    expect(oldObject(t, upd(['1', null, null], null, ['2', 'x', 'y']))).toEqual({ id: '1' });
    expect(oldObject(t, upd(null, ['1', null, 'b'], ['1', 'x', 'y']))).toEqual({
      id: '1',
      v: null,
      big: 'b',
    });
  });
  it('leaves unchanged TOAST columns out of the new row', () => {
    expect(recordedChange(t, upd(null, null, ['1', 'x', UNCHANGED_TOAST]))).toEqual({
      schema: 's',
      table: 't',
      kind: 'update',
      old: null,
      new: { id: '1', v: 'x' },
    });
  });
});
