/** Quotes an SQL identifier the way quote_ident() does when quoting is needed: always. */
export function quoteIdent(name: string): string {
  if (name.length === 0) throw new TypeError('quoteIdent: empty identifier');
  if (name.includes('\0')) throw new TypeError('quoteIdent: identifier contains a NUL byte');
  return `"${name.replaceAll('"', '""')}"`;
}

/** `schema.table` with both parts quoted. */
export function quoteQualified(schema: string, name: string): string {
  return `${quoteIdent(schema)}.${quoteIdent(name)}`;
}

/**
 * Quotes a string literal. Uses the E'' form only when a backslash is present, so the
 * result is correct whatever standard_conforming_strings is.
 */
export function quoteLiteral(value: string): string {
  if (value.includes('\0')) throw new TypeError('quoteLiteral: value contains a NUL byte');
  const body = value.replaceAll("'", "''");
  if (body.includes('\\')) return ` E'${body.replaceAll('\\', '\\\\')}'`.trimStart();
  return `'${body}'`;
}
