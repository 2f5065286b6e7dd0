import type pg from 'pg';
import type { NodeFacts, TableFacts } from '../init/checks.js';
import type { Edge } from '../naming.js';

// The same facts `init` gathers (init/init.ts keeps its query private), so add-node can
// run the same checks against the grown mesh.
const FACTS_SQL = `
  SELECT current_setting('server_version_num')::int AS version,
         current_setting('wal_level') AS wal_level,
         current_setting('track_commit_timestamp') AS track_commit_timestamp,
         current_setting('max_replication_slots')::int AS max_slots,
         current_setting('max_wal_senders')::int AS max_senders,
         coalesce(current_setting('max_active_replication_origins', true), current_setting('max_replication_slots'))::int AS max_origins,
         (SELECT count(*) FROM pg_replication_slots WHERE slot_name <> ALL($1::text[]))::int AS other_slots,
         (SELECT count(*) FROM pg_replication_slots WHERE slot_name = ANY($1::text[]))::int AS own_slots,
         (SELECT count(*) FROM pg_replication_origin WHERE roname <> ALL($2::text[]))::int AS other_origins,
         (SELECT count(*) FROM pg_replication_origin WHERE roname = ANY($2::text[]))::int AS own_origins`;

const TABLES_SQL = `
  SELECT n.nspname AS schema, c.relname AS name, c.relreplident::text AS replident,
         EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary) AS has_pk,
         coalesce((SELECT json_agg(json_build_object('name', a.attname, 'type', format_type(a.atttypid, a.atttypmod)) ORDER BY a.attnum)
                   FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '[]') AS columns,
         coalesce((SELECT json_agg(a.attname ORDER BY a.attnum)
                   FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
                   WHERE i.indrelid = c.oid AND ((c.relreplident = 'd' AND i.indisprimary) OR (c.relreplident = 'i' AND i.indisreplident))), '[]') AS identity
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY($1::text[])`;

/** Settings, capacity and table shapes of one node, counted against the edges of `edges`. */
export async function gatherNodeFacts(
  client: pg.Client,
  node: string,
  edges: Edge[],
  schemas: string[],
): Promise<NodeFacts> {
  const slots = edges.filter((e) => e.source === node).map((e) => e.slot);
  const origins = edges.filter((e) => e.target === node).map((e) => e.origin);
  const { rows } = await client.query(FACTS_SQL, [slots, origins]);
  const r = rows[0];
  const { rows: trows } = await client.query(TABLES_SQL, [schemas]);
  const tables = new Map<string, TableFacts>();
  for (const t of trows) {
    tables.set(`${t.schema}.${t.name}`, {
      schema: t.schema,
      name: t.name,
      columns: t.columns,
      hasPrimaryKey: t.has_pk,
      replicaIdentity: t.replident,
      identityColumns: t.identity,
    });
  }
  return {
    node,
    serverVersionNum: r.version,
    walLevel: r.wal_level,
    trackCommitTimestamp: r.track_commit_timestamp === 'on',
    maxReplicationSlots: r.max_slots,
    maxWalSenders: r.max_senders,
    maxReplicationOrigins: r.max_origins,
    otherSlots: r.other_slots,
    existingOwnSlots: r.own_slots,
    otherOrigins: r.other_origins,
    existingOwnOrigins: r.own_origins,
    tables,
  };
}
