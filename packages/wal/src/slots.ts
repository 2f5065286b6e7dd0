import { setTimeout as sleep } from 'node:timers/promises';
import { PgfleetError, type Queryable, SqlState, sqlStateOf } from '@pgfleet/connection';
import { toBigIntOrNull, toBoolean, toNumberOrNull, toStringOrNull } from './internal/values.js';
import { type Lsn, parseLsn, parseNullableLsn, ZERO_LSN } from './lsn.js';

export type SlotErrorCode =
  | 'SLOT_NAME_INVALID'
  | 'SLOT_EXISTS'
  | 'SLOT_CONFLICT'
  | 'SLOT_NOT_FOUND'
  | 'SLOT_ACTIVE';

/** A replication slot operation failed; `details.slot` names the slot. */
export class SlotError extends PgfleetError {
  declare readonly code: SlotErrorCode;
  constructor(
    code: SlotErrorCode,
    message: string,
    details: Record<string, unknown> = {},
    options?: ErrorOptions,
  ) {
    super(code, message, details, options);
  }
}

/** `pg_replication_slots.wal_status`: whether the WAL the slot needs is still guaranteed. */
export type SlotWalStatus = 'reserved' | 'extended' | 'unreserved' | 'lost';

/** One row of `pg_replication_slots`, typed. */
export interface ReplicationSlot {
  name: string;
  type: 'physical' | 'logical';
  /** Output plugin of a logical slot; `null` for physical slots. */
  plugin: string | null;
  /** Database of a logical slot; `null` for physical slots. */
  database: string | null;
  temporary: boolean;
  active: boolean;
  /** PID of the walsender/backend using the slot, when active. */
  activePid: number | null;
  /** Oldest WAL the slot still needs; `null` for a physical slot created without reserving WAL. */
  restartLsn: Lsn | null;
  /** Logical slots: position the consumer confirmed as flushed. */
  confirmedFlushLsn: Lsn | null;
  walStatus: SlotWalStatus | null;
  /** Bytes that can still be written before the slot is at risk of losing WAL (`null` when unlimited). */
  safeWalSizeBytes: bigint | null;
}

// Same rule as ReplicationSlotValidateName (src/backend/replication/slot.c); NAMEDATALEN - 1 = 63.
const SLOT_NAME = /^[a-z0-9_]{1,63}$/;

/** True for names PostgreSQL accepts for a replication slot: 1-63 of `[a-z0-9_]`. */
export function isValidSlotName(name: string): boolean {
  return typeof name === 'string' && SLOT_NAME.test(name);
}

function assertSlotName(name: string): void {
  if (!isValidSlotName(name)) {
    throw new SlotError(
      'SLOT_NAME_INVALID',
      `invalid replication slot name ${JSON.stringify(name)}: use 1-63 lowercase letters, digits or underscores`,
      { slot: name },
    );
  }
}

const SLOT_COLUMNS = `slot_name, slot_type, plugin, database, temporary, active, active_pid,
  restart_lsn::text AS restart_lsn, confirmed_flush_lsn::text AS confirmed_flush_lsn,
  wal_status, safe_wal_size`;

// biome-ignore lint/suspicious/noExplicitAny: rows come untyped from the driver
function toSlot(row: any): ReplicationSlot {
  return {
    name: String(row.slot_name),
    type: row.slot_type === 'logical' ? 'logical' : 'physical',
    plugin: toStringOrNull(row.plugin),
    database: toStringOrNull(row.database),
    temporary: toBoolean(row.temporary),
    active: toBoolean(row.active),
    activePid: toNumberOrNull(row.active_pid),
    restartLsn: parseNullableLsn(row.restart_lsn),
    confirmedFlushLsn: parseNullableLsn(row.confirmed_flush_lsn),
    walStatus: (toStringOrNull(row.wal_status) as SlotWalStatus | null) ?? null,
    safeWalSizeBytes: toBigIntOrNull(row.safe_wal_size),
  };
}

/** All replication slots on the server, ordered by name. */
export async function listSlots(q: Queryable): Promise<ReplicationSlot[]> {
  const { rows } = await q.query(`SELECT ${SLOT_COLUMNS} FROM pg_replication_slots ORDER BY slot_name`);
  return rows.map(toSlot);
}

/** The slot named `name`, or `null` when there is none. */
export async function getSlot(q: Queryable, name: string): Promise<ReplicationSlot | null> {
  const { rows } = await q.query(`SELECT ${SLOT_COLUMNS} FROM pg_replication_slots WHERE slot_name = $1`, [
    name,
  ]);
  return rows[0] ? toSlot(rows[0]) : null;
}

export interface CreatePhysicalSlotOptions {
  /** Reserve WAL from now on (`immediately_reserve`); otherwise from the first standby connection. */
  reserve?: boolean;
}

export interface CreatedPhysicalSlot {
  name: string;
  /** False when the slot already existed (it is then left exactly as it was). */
  created: boolean;
  restartLsn: Lsn | null;
}

/**
 * Creates a physical slot unless one of that name exists. Idempotent; throws `SLOT_CONFLICT` when
 * a logical slot holds the name.
 */
export async function createPhysicalSlot(
  q: Queryable,
  name: string,
  options: CreatePhysicalSlotOptions = {},
): Promise<CreatedPhysicalSlot> {
  assertSlotName(name);
  let rows: Array<{ existed: boolean; existing_type: string | null; lsn: string | null }>;
  try {
    // One statement: the CASE only calls the (volatile) create function when the slot is absent.
    ({ rows } = await q.query(
      `WITH existing AS (SELECT slot_type, restart_lsn FROM pg_replication_slots WHERE slot_name = $1)
       SELECT EXISTS (SELECT 1 FROM existing) AS existed,
              (SELECT slot_type FROM existing) AS existing_type,
              CASE WHEN EXISTS (SELECT 1 FROM existing) THEN (SELECT restart_lsn FROM existing)::text
                   ELSE (pg_create_physical_replication_slot($1, $2)).lsn::text END AS lsn`,
      [name, options.reserve === true],
    ));
  } catch (err) {
    // Lost a race with a concurrent creator: treat like "existed".
    if (sqlStateOf(err) !== SqlState.DUPLICATE_OBJECT) throw err;
    const slot = await getSlot(q, name);
    if (!slot) throw err;
    rows = [{ existed: true, existing_type: slot.type, lsn: null }];
  }
  const row = rows[0]!;
  const existed = toBoolean(row.existed);
  if (existed && row.existing_type !== 'physical') {
    throw new SlotError(
      'SLOT_CONFLICT',
      `replication slot "${name}" already exists as a ${row.existing_type} slot; drop it or choose another name`,
      { slot: name, existingType: row.existing_type },
    );
  }
  return { name, created: !existed, restartLsn: parseNullableLsn(row.lsn) };
}

export interface CreateLogicalSlotOptions {
  /**
   * Return the existing slot instead of failing with `SLOT_EXISTS` when it has the same plugin and
   * database. Its `consistentLsn` is then its confirmed_flush_lsn, not a fresh consistent point.
   */
  ifNotExists?: boolean;
  /**
   * PostgreSQL 17+: a failover slot, synchronized to standbys that run with
   * `sync_replication_slots = on`, so it survives the promotion of one of them.
   */
  failover?: boolean;
}

export interface CreatedLogicalSlot {
  name: string;
  /** First LSN the slot will decode from: changes committed after it are streamed. */
  consistentLsn: Lsn;
  created: boolean;
}

/**
 * Creates a logical slot in the current database. Waits for in-progress transactions to finish
 * (that is how the slot finds a consistent point), so do not call it while holding open writes.
 */
export async function createLogicalSlot(
  q: Queryable,
  name: string,
  plugin = 'pgoutput',
  options: CreateLogicalSlotOptions = {},
): Promise<CreatedLogicalSlot> {
  assertSlotName(name);
  const reuse = async (cause?: unknown): Promise<CreatedLogicalSlot | null> => {
    const { rows } = await q.query(
      `SELECT ${SLOT_COLUMNS}, current_database() AS current_db FROM pg_replication_slots WHERE slot_name = $1`,
      [name],
    );
    if (!rows[0]) return null;
    const slot = toSlot(rows[0]);
    const currentDb = String(rows[0].current_db);
    if (!options.ifNotExists) {
      throw new SlotError(
        'SLOT_EXISTS',
        `replication slot "${name}" already exists; drop it first or pass { ifNotExists: true }`,
        { slot: name },
        cause ? { cause } : undefined,
      );
    }
    if (slot.type !== 'logical' || slot.plugin !== plugin || slot.database !== currentDb) {
      throw new SlotError(
        'SLOT_CONFLICT',
        `replication slot "${name}" already exists as ${describeSlot(slot)}, not a logical ${plugin} slot in database "${currentDb}"`,
        { slot: name, type: slot.type, plugin: slot.plugin, database: slot.database },
      );
    }
    // confirmed_flush_lsn is set once the slot reached its consistent point, which is before
    // pg_create_logical_replication_slot returns.
    return { name, consistentLsn: slot.confirmedFlushLsn ?? ZERO_LSN, created: false };
  };

  const existing = await reuse();
  if (existing) return existing;
  try {
    // The 5-argument form (temporary, twophase, failover) exists from PostgreSQL 17 on.
    const { rows } = await q.query(
      options.failover
        ? `SELECT lsn::text AS lsn FROM pg_create_logical_replication_slot($1, $2, false, false, true)`
        : `SELECT lsn::text AS lsn FROM pg_create_logical_replication_slot($1, $2)`,
      [name, plugin],
    );
    return { name, consistentLsn: parseLsn(rows[0].lsn), created: true };
  } catch (err) {
    if (sqlStateOf(err) !== SqlState.DUPLICATE_OBJECT) throw err;
    const raced = await reuse(err);
    if (raced) return raced;
    throw err;
  }
}

export interface DropSlotOptions {
  /** Return `false` instead of throwing `SLOT_NOT_FOUND` when there is no such slot. */
  ifExists?: boolean;
  /**
   * Terminate the walsender/backend holding an active slot, then drop it. Without this an active
   * slot throws `SLOT_ACTIVE`: dropping a slot someone streams from is a decision, not a side effect.
   */
  force?: boolean;
  /** How long `force` keeps terminating and retrying before giving up (default 10 s). */
  timeoutMs?: number;
}

/** Drops a slot. Returns `true` when it dropped one, `false` when `ifExists` and it was absent. */
export async function dropSlot(q: Queryable, name: string, options: DropSlotOptions = {}): Promise<boolean> {
  const deadline = Date.now() + (options.timeoutMs ?? 10_000);
  for (;;) {
    const slot = await getSlot(q, name);
    if (!slot) return notFound(name, options);
    if (slot.active) {
      if (!options.force) {
        throw new SlotError(
          'SLOT_ACTIVE',
          `replication slot "${name}" is in use by PID ${slot.activePid}; stop its consumer or pass { force: true }`,
          { slot: name, activePid: slot.activePid },
        );
      }
      if (Date.now() > deadline) {
        throw new SlotError(
          'SLOT_ACTIVE',
          `replication slot "${name}" is still in use by PID ${slot.activePid} after terminating it for ${options.timeoutMs ?? 10_000} ms (does its consumer reconnect at once?)`,
          { slot: name, activePid: slot.activePid },
        );
      }
      // Termination is asynchronous: the slot is released when the process exits, so poll.
      if (slot.activePid !== null) await q.query('SELECT pg_terminate_backend($1)', [slot.activePid]);
      await sleep(50);
      continue;
    }
    try {
      await q.query('SELECT pg_drop_replication_slot($1)', [name]);
      return true;
    } catch (err) {
      const state = sqlStateOf(err);
      if (state === SqlState.UNDEFINED_OBJECT) return notFound(name, options, err);
      // A consumer grabbed the slot between our check and the drop: go round again.
      if (state === SqlState.OBJECT_IN_USE) continue;
      throw err;
    }
  }
}

function notFound(name: string, options: DropSlotOptions, cause?: unknown): false {
  if (options.ifExists) return false;
  throw new SlotError(
    'SLOT_NOT_FOUND',
    `replication slot "${name}" does not exist`,
    { slot: name },
    cause ? { cause } : undefined,
  );
}

function describeSlot(slot: ReplicationSlot): string {
  return slot.type === 'physical'
    ? 'a physical slot'
    : `a logical ${slot.plugin} slot in database "${slot.database}"`;
}
