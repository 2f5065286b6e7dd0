/**
 * The one method SQL helpers need. pg.Client, pg.Pool and PoolClient all satisfy it, so
 * helpers in other packages take a Queryable and callers choose how they connect.
 */
export interface Queryable {
  // biome-ignore lint/suspicious/noExplicitAny: rows are whatever the query selects; callers narrow them.
  query(text: string, values?: unknown[]): Promise<{ rows: any[] }>;
}
