import { parseConninfo } from '@pgfleet/connection';

/** `host:port` of a conninfo for messages (never the password); the input itself if unparsable. */
export function nodeLabel(conninfo: string): string {
  try {
    const p = parseConninfo(conninfo);
    return `${p.host ?? p.hostaddr ?? 'localhost'}:${p.port ?? '5432'}`;
  } catch {
    return 'node (unparsable conninfo)';
  }
}
