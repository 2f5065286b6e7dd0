import { PgfleetError } from '@pgfleet/connection';

/**
 * A PostgreSQL write-ahead log position (`pg_lsn`): a 64-bit byte offset into the WAL stream.
 * Branded so a plain bigint (a row count, a byte size) cannot be passed where a position is meant.
 * LSNs enter as text (`'16/B374D848'`) through {@link parseLsn} and leave through {@link formatLsn};
 * everything in between compares and subtracts numbers, never strings.
 */
export type Lsn = bigint & { readonly __brand: 'Lsn' };

/** An LSN was malformed or out of range; `details.input` holds the offending value. */
export class LsnError extends PgfleetError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super('LSN_INVALID', message, details);
  }
}

const MAX_LSN_VALUE = (1n << 64n) - 1n;

/** `0/0`, PostgreSQL's InvalidXLogRecPtr: "no position". */
export const ZERO_LSN = 0n as Lsn;
/** `FFFFFFFF/FFFFFFFF`, the largest representable position. */
export const MAX_LSN = MAX_LSN_VALUE as Lsn;

// Same grammar as pg_lsn_in (src/backend/utils/adt/pg_lsn.c): 1..8 hex digits, a slash,
// 1..8 hex digits, nothing else (no sign, no whitespace, no 0x prefix).
const LSN_TEXT = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/;

/** Parses `'X/Y'` (hex, any case, zero-padded or not) into an {@link Lsn}. Throws {@link LsnError}. */
export function parseLsn(text: string): Lsn {
  if (typeof text !== 'string') {
    throw new LsnError(`invalid LSN ${describe(text)}: expected a string like '16/B374D848'`, {
      input: describe(text),
    });
  }
  const match = LSN_TEXT.exec(text);
  if (!match) {
    throw new LsnError(
      `invalid LSN ${JSON.stringify(text)}: expected two hex numbers of at most 8 digits separated by '/', like '16/B374D848'`,
      { input: text },
    );
  }
  return ((BigInt(`0x${match[1]}`) << 32n) | BigInt(`0x${match[2]}`)) as Lsn;
}

/** Like {@link parseLsn}, but SQL NULL (`null`/`undefined`) maps to `null`. */
export function parseNullableLsn(text: string | null | undefined): Lsn | null {
  return text === null || text === undefined ? null : parseLsn(text);
}

/** True when `text` is a well-formed LSN that {@link parseLsn} accepts. */
export function isValidLsn(text: string): boolean {
  return typeof text === 'string' && LSN_TEXT.test(text);
}

/** Formats as PostgreSQL prints `pg_lsn` (`%X/%X`): uppercase hex, no zero padding. */
export function formatLsn(lsn: Lsn): string {
  const value = checkRange(lsn, 'formatLsn');
  const hi = (value >> 32n).toString(16).toUpperCase();
  const lo = (value & 0xffffffffn).toString(16).toUpperCase();
  return `${hi}/${lo}`;
}

/** Brands a bigint as an LSN after checking it is within 0..2^64-1. */
export function toLsn(value: bigint): Lsn {
  return checkRange(value, 'toLsn') as Lsn;
}

/** Negative when a < b, zero when equal, positive when a > b (usable with `Array.prototype.sort`). */
export function compareLsn(a: Lsn, b: Lsn): -1 | 0 | 1 {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** `lsn + bytes`; throws {@link LsnError} if the result leaves 0..2^64-1. */
export function lsnAdd(lsn: Lsn, bytes: bigint | number): Lsn {
  const delta = typeof bytes === 'number' ? numberToBigInt(bytes) : bytes;
  const result = lsn + delta;
  if (result < 0n || result > MAX_LSN_VALUE) {
    throw new LsnError(`LSN ${formatLsn(lsn)} + ${delta} bytes is outside the WAL address space`, {
      lsn: formatLsn(lsn),
      bytes: delta.toString(),
    });
  }
  return result as Lsn;
}

/** `a - b` in bytes (negative when a is behind b), like `pg_wal_lsn_diff(a, b)`. */
export function lsnDiff(a: Lsn, b: Lsn): bigint {
  return a - b;
}

/** The later of the given positions. */
export function maxLsn(first: Lsn, ...rest: Lsn[]): Lsn {
  let best = first;
  for (const lsn of rest) if (lsn > best) best = lsn;
  return best;
}

/** The earlier of the given positions. */
export function minLsn(first: Lsn, ...rest: Lsn[]): Lsn {
  let best = first;
  for (const lsn of rest) if (lsn < best) best = lsn;
  return best;
}

function checkRange(value: bigint, where: string): bigint {
  if (typeof value !== 'bigint' || value < 0n || value > MAX_LSN_VALUE) {
    throw new LsnError(`${where}: ${describe(value)} is not an LSN (must be a bigint in 0..2^64-1)`, {
      input: describe(value),
    });
  }
  return value;
}

function numberToBigInt(n: number): bigint {
  if (!Number.isSafeInteger(n)) {
    throw new LsnError(`byte count ${n} is not a safe integer; pass a bigint`, { input: String(n) });
  }
  return BigInt(n);
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'bigint') return `${value}n`;
  return String(value);
}
