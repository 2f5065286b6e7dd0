/** Microseconds between 1970-01-01 and 2000-01-01 (PostgreSQL's timestamp epoch). */
const PG_EPOCH_UNIX_US = 946_684_800_000_000n;

/** A PostgreSQL timestamp as the wire carries it: µs since 2000-01-01 UTC. */
export type PgMicros = bigint;

/**
 * `2024-05-01 12:00:00.123456+00`, exact to the microsecond, suitable for a timestamptz
 * literal. JavaScript Dates keep only milliseconds, so the µs are added by hand.
 */
export function formatPgTimestamp(us: PgMicros): string {
  const unixUs = us + PG_EPOCH_UNIX_US;
  let ms = unixUs / 1000n;
  let rest = unixUs % 1000n;
  if (rest < 0n) {
    rest += 1000n;
    ms -= 1n;
  }
  const d = new Date(Number(ms));
  const iso = d.toISOString(); // YYYY-MM-DDTHH:MM:SS.mmmZ
  const frac = iso.slice(20, 23) + rest.toString().padStart(3, '0');
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)}.${frac}+00`;
}

/** Parses the `extract(epoch ...)`-free form we query: µs since 2000-01-01 as a decimal string. */
export function parsePgMicros(text: string): PgMicros {
  if (!/^-?\d+$/.test(text)) throw new TypeError(`not a microsecond count: ${text}`);
  return BigInt(text);
}

/** SQL expression giving µs since 2000-01-01 of a timestamptz expression, as int8 (exact). */
export function sqlMicros(expr: string): string {
  // extract() returns numeric since PostgreSQL 14, so this is exact to the µs.
  return `((extract(epoch from ${expr}) * 1000000)::int8 - ${PG_EPOCH_UNIX_US})`;
}

/** Milliseconds since 1970 (for lag in seconds and logs). */
export function pgMicrosToUnixMs(us: PgMicros): number {
  return Number((us + PG_EPOCH_UNIX_US) / 1000n);
}
