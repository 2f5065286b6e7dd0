import { describe, expect, it } from 'vitest';
import { duplicateJsonKeys } from './json-keys.js';

describe('duplicateJsonKeys', () => {
  it.each<[string, string[]]>([
    ['{"a":1,"b":2}', []],
    ['{"component":"cli","component":"edge","edge":"a_b","edge":"a_b"}', ['component', 'edge']],
    ['{"a":{"b":1,"b":2},"c":[{"d":1},{"d":2}]}', ['b']],
    ['{"a":"x,\\"a\\":1","b":1}', []],
    ['{"a":{"x":1},"a":2}', ['a']],
  ])('%s', (line, dups) => {
    expect(duplicateJsonKeys(line).sort()).toEqual(dups);
  });
});
