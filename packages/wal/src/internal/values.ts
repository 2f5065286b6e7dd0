// Row value coercion for results from any Queryable: node-postgres returns int8/numeric as
// strings and float8/int4 as numbers by default, but a caller may have installed other type
// parsers, so accept both spellings.

export function toNumberOrNull(value: unknown): number | null {
  if (value === null || value === undefined) return null;
  const n = typeof value === 'number' ? value : Number(value);
  return Number.isFinite(n) ? n : null;
}

export function toBigIntOrNull(value: unknown): bigint | null {
  if (value === null || value === undefined) return null;
  if (typeof value === 'bigint') return value;
  if (typeof value === 'number') return BigInt(Math.trunc(value));
  return BigInt(String(value));
}

export function toBoolean(value: unknown): boolean {
  return value === true || value === 't' || value === 'true';
}

export function toStringOrNull(value: unknown): string | null {
  return value === null || value === undefined ? null : String(value);
}
