import { PgfleetError, type Queryable, SqlState, sqlStateOf } from '@pgfleet/connection';
import { toBoolean, toNumberOrNull } from './internal/values.js';
import { formatLsn, type Lsn, parseNullableLsn, ZERO_LSN } from './lsn.js';

export type OriginErrorCode = 'ORIGIN_NOT_FOUND' | 'ORIGIN_ACTIVE';

/** A replication origin operation failed; `details.origin` names the origin. */
export class OriginError extends PgfleetError {
  declare readonly code: OriginErrorCode;
  constructor(
    code: OriginErrorCode,
    message: string,
    details: Record<string, unknown> = {},
    options?: ErrorOptions,
  ) {
    super(code, message, details, options);
  }
}

/** A replication origin with its replay progress (`pg_replication_origin` + `_status`). */
export interface ReplicationOrigin {
  id: number;
  name: string;
  /** Last source LSN applied through this origin; `null` before the first advance. */
  remoteLsn: Lsn | null;
  /** Local LSN of the commit that recorded `remoteLsn`; `null` when unknown. */
  localLsn: Lsn | null;
}

export interface CreatedOrigin {
  id: number;
  name: string;
  /** False when the origin already existed. */
  created: boolean;
}

/** Creates a replication origin unless one of that name exists. Idempotent. */
export async function createOrigin(q: Queryable, name: string): Promise<CreatedOrigin> {
  try {
    // COALESCE evaluates its second argument only when the first is NULL, so the create function
    // runs only for a new name.
    const { rows } = await q.query(
      `WITH existing AS (SELECT pg_replication_origin_oid($1) AS id)
       SELECT (SELECT id FROM existing) IS NOT NULL AS existed,
              COALESCE((SELECT id FROM existing), pg_replication_origin_create($1)) AS id`,
      [name],
    );
    return { id: toNumberOrNull(rows[0].id)!, name, created: !toBoolean(rows[0].existed) };
  } catch (err) {
    // A concurrent creator won the race (unique index on roname).
    if (sqlStateOf(err) !== SqlState.UNIQUE_VIOLATION) throw err;
    const { rows } = await q.query('SELECT pg_replication_origin_oid($1) AS id', [name]);
    const id = toNumberOrNull(rows[0]?.id);
    if (id === null) throw err;
    return { id, name, created: false };
  }
}

export interface DropOriginOptions {
  /** Return `false` instead of throwing `ORIGIN_NOT_FOUND` when there is no such origin. */
  ifExists?: boolean;
}

/**
 * Drops a replication origin. Returns `true` when it dropped one. Throws `ORIGIN_ACTIVE` while an
 * apply session has it set up (`pg_replication_origin_session_setup`).
 */
export async function dropOrigin(
  q: Queryable,
  name: string,
  options: DropOriginOptions = {},
): Promise<boolean> {
  const { rows } = await q.query('SELECT pg_replication_origin_oid($1) IS NOT NULL AS exists', [name]);
  if (!toBoolean(rows[0].exists)) return originNotFound(name, options);
  try {
    await q.query('SELECT pg_replication_origin_drop($1)', [name]);
    return true;
  } catch (err) {
    if (sqlStateOf(err) === SqlState.UNDEFINED_OBJECT) return originNotFound(name, options, err);
    throw mapOriginError(err, name);
  }
}

export interface OriginProgressOptions {
  /**
   * Only report progress whose local commit is flushed to disk (`flush => true`), i.e. what
   * survives a crash of this server. Default `false`: the latest applied position.
   */
  flush?: boolean;
}

/** Source LSN replayed so far through origin `name`, or `null` if it never advanced. */
export async function originProgress(
  q: Queryable,
  name: string,
  options: OriginProgressOptions = {},
): Promise<Lsn | null> {
  try {
    const { rows } = await q.query('SELECT pg_replication_origin_progress($1, $2)::text AS lsn', [
      name,
      options.flush === true,
    ]);
    return parseNullableLsn(rows[0].lsn);
  } catch (err) {
    throw mapOriginError(err, name);
  }
}

/**
 * Sets the origin's progress to `lsn` (forwards or backwards: PostgreSQL allows both here), e.g. to
 * start a new edge at a snapshot's LSN. Not allowed while a session has the origin set up.
 */
export async function advanceOrigin(q: Queryable, name: string, lsn: Lsn): Promise<void> {
  try {
    await q.query('SELECT pg_replication_origin_advance($1, $2::pg_lsn)', [name, formatLsn(lsn)]);
  } catch (err) {
    throw mapOriginError(err, name);
  }
}

/** All replication origins with their progress, ordered by name. */
export async function listOrigins(q: Queryable): Promise<ReplicationOrigin[]> {
  const { rows } = await q.query(
    `SELECT o.roident AS id, o.roname AS name,
            s.remote_lsn::text AS remote_lsn, s.local_lsn::text AS local_lsn
     FROM pg_replication_origin o
     LEFT JOIN pg_replication_origin_status s ON s.local_id = o.roident
     ORDER BY o.roname`,
  );
  // pg_replication_origin_status shows 0/0 for an origin that has a slot in shared memory but
  // never advanced; pg_replication_origin_progress() returns NULL for the same state. Use null.
  const orNull = (text: string | null): Lsn | null => {
    const lsn = parseNullableLsn(text);
    return lsn === ZERO_LSN ? null : lsn;
  };
  return rows.map((row) => ({
    id: toNumberOrNull(row.id)!,
    name: String(row.name),
    remoteLsn: orNull(row.remote_lsn),
    localLsn: orNull(row.local_lsn),
  }));
}

function originNotFound(name: string, options: DropOriginOptions, cause?: unknown): false {
  if (options.ifExists) return false;
  throw new OriginError(
    'ORIGIN_NOT_FOUND',
    `replication origin "${name}" does not exist`,
    { origin: name },
    cause ? { cause } : undefined,
  );
}

function mapOriginError(err: unknown, name: string): unknown {
  const state = sqlStateOf(err);
  if (state === SqlState.UNDEFINED_OBJECT) {
    return new OriginError(
      'ORIGIN_NOT_FOUND',
      `replication origin "${name}" does not exist`,
      { origin: name },
      {
        cause: err,
      },
    );
  }
  if (state === SqlState.OBJECT_IN_USE) {
    return new OriginError(
      'ORIGIN_ACTIVE',
      `replication origin "${name}" is set up by an apply session; stop that session first`,
      { origin: name },
      { cause: err },
    );
  }
  return err;
}
