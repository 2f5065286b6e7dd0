/**
 * Whether a decoded transaction must be skipped to avoid loops. Any transaction carrying
 * an Origin message was applied by a replicator on the source (its own source sends it to
 * every node directly), so re-sending it would echo. On PostgreSQL 16+ the stream is opened
 * with `origin 'none'` and such transactions never arrive; the check stays as a guard.
 */
export function shouldSkipTransaction(originName: string | null): boolean {
  return originName !== null;
}

/** `origin 'none'` exists from PostgreSQL 16 (server_version_num 160000). */
export function serverFiltersOrigin(serverVersionNum: number): boolean {
  return serverVersionNum >= 160000;
}
