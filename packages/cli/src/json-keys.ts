/**
 * Keys that occur more than once in one JSON object of `text` (any depth), e.g. a pino line
 * `{"component":"cli","component":"edge"}` → `['component']`. JSON.parse keeps the last
 * value silently, which is how such lines hide; log tests use this to catch them.
 */
export function duplicateJsonKeys(text: string): string[] {
  const dups = new Set<string>();
  const stack: Array<{ keys: Set<string> | null; expectKey: boolean }> = [];
  let i = 0;
  const readString = (): string => {
    let out = '';
    i++; // opening quote
    while (i < text.length && text[i] !== '"') {
      if (text[i] === '\\') {
        out += text.slice(i, i + 2);
        i += 2;
      } else out += text[i++];
    }
    i++; // closing quote
    return out;
  };
  while (i < text.length) {
    const ch = text[i] as string;
    const top = stack.at(-1);
    if (ch === '{') {
      stack.push({ keys: new Set(), expectKey: true });
      i++;
    } else if (ch === '[') {
      stack.push({ keys: null, expectKey: false });
      i++;
    } else if (ch === '}' || ch === ']') {
      stack.pop();
      i++;
    } else if (ch === ',') {
      if (top?.keys) top.expectKey = true;
      i++;
    } else if (ch === '"') {
      const s = readString();
      if (top?.keys && top.expectKey) {
        if (top.keys.has(s)) dups.add(s);
        top.keys.add(s);
        top.expectKey = false;
      }
    } else i++;
  }
  return [...dups];
}
