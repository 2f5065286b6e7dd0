/**
 * The grammar of `synchronous_standby_names`, parsed, formatted and evaluated exactly as the
 * server does it (src/backend/replication/syncrep_scanner.l, syncrep_gram.y, syncrep.c):
 *
 *   config := list | NUM '(' list ')' | FIRST NUM '(' list ')' | ANY NUM '(' list ')'
 *   list   := name (',' name)*         name := identifier | NUM | '*' | "double quoted"
 *
 * ANY and FIRST are case-insensitive keywords (a standby named "any" must be quoted); a bare
 * list or `NUM (list)` means FIRST. Unquoted names keep their case, and the server compares
 * names with application_name case-insensitively (pg_strcasecmp), quoted or not.
 */

export type SyncMethod = 'first' | 'any' | 'none';

/** A parsed synchronous_standby_names value. `none` (empty value) has num 0 and no names. */
export interface SyncStandbySpec {
  method: SyncMethod;
  num: number;
  names: string[];
}

export const NO_SYNC_STANDBYS: Readonly<SyncStandbySpec> = Object.freeze({
  method: 'none',
  num: 0,
  names: [],
});

/** Thrown by parseSyncStandbyNames; `position` is the 0-based offset of the problem. */
export class SyncStandbyNamesSyntaxError extends Error {
  readonly position: number;
  constructor(message: string, position: number) {
    super(message);
    this.name = 'SyncStandbyNamesSyntaxError';
    this.position = position;
  }
}

type Token =
  | { kind: 'name'; value: string; pos: number; quoted: boolean }
  | { kind: 'num'; value: string; pos: number }
  | { kind: 'any' | 'first' | ',' | '(' | ')' | 'end'; pos: number };

// The scanner's classes; bytes \200-\377 (any non-ASCII character here) may appear in names.
const isSpace = (c: string) =>
  c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\f' || c === '\v';
const isDigit = (c: string) => c >= '0' && c <= '9';
const isIdentStart = (c: string) =>
  (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c === '_' || c >= '\u0080';
const isIdentCont = (c: string) => isIdentStart(c) || isDigit(c) || c === '$';

function tokenize(input: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < input.length) {
    const c = input[i]!;
    const start = i;
    if (isSpace(c)) {
      i++;
    } else if (c === ',' || c === '(' || c === ')') {
      tokens.push({ kind: c, pos: start });
      i++;
    } else if (c === '*') {
      tokens.push({ kind: 'name', value: '*', pos: start, quoted: false });
      i++;
    } else if (c === '"') {
      let value = '';
      i++;
      for (;;) {
        if (i >= input.length) throw new SyncStandbyNamesSyntaxError('unterminated quoted identifier', start);
        if (input[i] === '"') {
          if (input[i + 1] === '"') {
            value += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        value += input[i];
        i++;
      }
      tokens.push({ kind: 'name', value, pos: start, quoted: true });
    } else if (isDigit(c)) {
      while (i < input.length && isDigit(input[i]!)) i++;
      tokens.push({ kind: 'num', value: input.slice(start, i), pos: start });
    } else if (isIdentStart(c)) {
      while (i < input.length && isIdentCont(input[i]!)) i++;
      const word = input.slice(start, i);
      // flex takes the longest match, so only the whole word "any"/"first" is a keyword.
      const lower = asciiLower(word);
      if (lower === 'any' || lower === 'first') tokens.push({ kind: lower, pos: start });
      else tokens.push({ kind: 'name', value: word, pos: start, quoted: false });
    } else {
      throw new SyncStandbyNamesSyntaxError(`unexpected character ${JSON.stringify(c)}`, start);
    }
  }
  tokens.push({ kind: 'end', pos: input.length });
  return tokens;
}

/**
 * Parses a synchronous_standby_names value. Accepts exactly what the server accepts:
 * `''` is "no synchronous standbys"; whitespace alone is a syntax error there too.
 */
export function parseSyncStandbyNames(value: string): SyncStandbySpec {
  if (value === '') return { method: 'none', num: 0, names: [] };
  const tokens = tokenize(value);
  let at = 0;
  const peek = () => tokens[at]!;
  const fail = (what: string): never => {
    const t = peek();
    const found = t.kind === 'end' ? 'end of input' : `"${value.slice(t.pos, t.pos + 12)}"`;
    throw new SyncStandbyNamesSyntaxError(`${what}, found ${found} at position ${t.pos}`, t.pos);
  };
  const expect = (kind: Token['kind'], what: string) => {
    if (peek().kind !== kind) fail(`expected ${what}`);
    at++;
  };
  const parseNum = (): number => {
    const t = peek();
    if (t.kind !== 'num') return fail('expected the number of synchronous standbys');
    at++;
    const num = Number(t.value);
    if (!Number.isSafeInteger(num) || num < 1 || num > 2 ** 31 - 1) {
      throw new SyncStandbyNamesSyntaxError(
        `number of synchronous standbys (${t.value}) must be greater than zero`,
        t.pos,
      );
    }
    return num;
  };
  const parseList = (): string[] => {
    const names: string[] = [];
    for (;;) {
      const t = peek();
      if (t.kind === 'name' || t.kind === 'num') names.push(t.value);
      else fail('expected a standby name');
      at++;
      if (peek().kind !== ',') return names;
      at++;
    }
  };

  let spec: SyncStandbySpec;
  const first = peek();
  if (first.kind === 'any' || first.kind === 'first') {
    at++;
    const num = parseNum();
    expect('(', '"("');
    const names = parseList();
    expect(')', '")"');
    spec = { method: first.kind, num, names };
  } else if (first.kind === 'num' && tokens[at + 1]?.kind === '(') {
    const num = parseNum();
    expect('(', '"("');
    const names = parseList();
    expect(')', '")"');
    spec = { method: 'first', num, names };
  } else {
    spec = { method: 'first', num: 1, names: parseList() };
  }
  if (peek().kind !== 'end') fail('expected end of input');
  return spec;
}

const PLAIN_NAME = /^[A-Za-z_\u0080-\uffff][A-Za-z0-9_$\u0080-\uffff]*$/;

function formatName(name: string): string {
  if (name === '*') return '*';
  if (PLAIN_NAME.test(name) && asciiLower(name) !== 'any' && asciiLower(name) !== 'first') return name;
  if (/^[0-9]+$/.test(name)) return name;
  return `"${name.replaceAll('"', '""')}"`;
}

/**
 * Formats a spec in the explicit form (`FIRST 1 (a, "keeper-b")`, `ANY 2 (a, b)`, `''` for none),
 * quoting names that are not plain identifiers (dashes, dots, spaces, the keywords any/first).
 * parseSyncStandbyNames(formatSyncStandbyNames(s)) equals s for every valid spec.
 */
export function formatSyncStandbyNames(spec: SyncStandbySpec): string {
  if (spec.method === 'none') return '';
  if (spec.names.length === 0)
    throw new TypeError('formatSyncStandbyNames: a FIRST/ANY spec needs at least one name');
  if (!Number.isSafeInteger(spec.num) || spec.num < 1) {
    throw new TypeError(`formatSyncStandbyNames: num must be a positive integer, got ${spec.num}`);
  }
  return `${spec.method.toUpperCase()} ${spec.num} (${spec.names.map(formatName).join(', ')})`;
}

/** pg_strcasecmp folds ASCII letters only. */
function asciiLower(s: string): string {
  return s.replace(/[A-Z]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 32));
}

function nameMatches(entry: string, applicationName: string): boolean {
  return entry === '*' || asciiLower(entry) === asciiLower(applicationName);
}

/**
 * The sync_priority the server gives a standby with this application_name (what
 * pg_stat_replication.sync_priority shows): its 1-based position in the list under FIRST, 1 for
 * any listed standby under ANY, 0 when it is not listed (or no sync standbys are configured).
 */
export function syncPriority(spec: SyncStandbySpec, applicationName: string): number {
  if (spec.method === 'none') return 0;
  const index = spec.names.findIndex((entry) => nameMatches(entry, applicationName));
  if (index < 0) return 0;
  return spec.method === 'any' ? 1 : index + 1;
}

export interface StandbyIsSyncOptions {
  /**
   * application_name of the OTHER standbys currently streaming. Default: none, i.e. "would it
   * count if it were the only standby connected".
   */
  connected?: readonly string[];
}

/**
 * Would a commit wait for (and count) this standby's confirmation?
 * - ANY n: every listed standby takes part in the quorum → true when listed.
 * - FIRST n: the n connected standbys with the best (lowest) priority are synchronous. Ties are
 *   broken by the server in walsender slot order, which we cannot know, so a tie that could
 *   push this standby out returns false: true means "certainly synchronous".
 */
export function standbyIsSync(
  spec: SyncStandbySpec,
  applicationName: string,
  options: StandbyIsSyncOptions = {},
): boolean {
  const mine = syncPriority(spec, applicationName);
  if (mine === 0) return false;
  if (spec.method === 'any') return true;
  let ahead = 0;
  for (const other of options.connected ?? []) {
    const theirs = syncPriority(spec, other);
    if (theirs !== 0 && theirs <= mine) ahead++;
  }
  return ahead < spec.num;
}

/**
 * Can no synchronous commit be acknowledged without this standby's confirmation? True when
 * every name in the list other than the primary's own (a server never confirms its own WAL)
 * is this standby: then each acknowledged commit waited for it, streaming or not at this
 * moment. False for an empty value, for `*`, and when any other standby could confirm.
 */
export function commitsNeedStandby(spec: SyncStandbySpec, standby: string, primary: string): boolean {
  if (spec.method === 'none' || spec.num < 1) return false;
  const others = spec.names.filter((entry) => entry === '*' || asciiLower(entry) !== asciiLower(primary));
  return others.length > 0 && others.every((entry) => entry !== '*' && nameMatches(entry, standby));
}
