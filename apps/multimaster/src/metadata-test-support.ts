import type pg from 'pg';
import { METADATA_DDL } from './metadata.js';

/** Advisory lock key under which pg test files create pgfleet's metadata on the shared test server. */
const METADATA_LOCK = 4711;

/**
 * Creates pgfleet's metadata (METADATA_DDL) on the shared test server, where other test
 * files running at the same time create it too: CREATE ... IF NOT EXISTS is not safe
 * against a concurrent CREATE of the same name (it fails on a catalog unique index), so the
 * files take turns.
 */
export async function createTestMetadata(db: pg.Client): Promise<void> {
  await db.query('SELECT pg_advisory_lock($1)', [METADATA_LOCK]);
  try {
    for (const ddl of METADATA_DDL) await db.query(ddl);
  } finally {
    await db.query('SELECT pg_advisory_unlock($1)', [METADATA_LOCK]);
  }
}
