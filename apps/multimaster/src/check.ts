import { connect, quoteIdent, quoteLiteral, quoteQualified, toPgfleetError } from '@pgfleet/connection';
import type pg from 'pg';
import { loadTargetTable } from './apply/target-table.js';
import type { ResolvedConfig } from './config.js';
import { VALUE_TEXT_SETTINGS } from './session-settings.js';

export interface TableCheck {
  table: string;
  /** Row count and checksum per node (null when the node could not be read). */
  nodes: Record<string, { rows: number; checksum: string } | null>;
  equal: boolean;
  /**
   * Keys (as text) whose rows differ or are missing somewhere with no dead letter naming
   * them: nothing on record explains these; at most `maxKeys`.
   */
  differingKeys: string[];
  /**
   * Keys that differ and that a skipped, not yet replayed dead letter names (`node:id`,
   * see `pgfleet-mm dead-letters`): the difference is on record; at most `maxKeys`.
   */
  deadLetterKeys: Array<{ key: string; deadLetters: string[] }>;
  error?: string;
}

export interface CheckOptions {
  /** Most differing keys to list per table and kind (default 20). */
  maxKeys?: number;
}

/** Dead letters whose changes are missing from their node: skipped and not replayed since. */
const SKIPPED = `d.resolved IS NULL AND d.action IN ('skip_change', 'skip_transaction', 'skipped_by_operator')`;

/**
 * Compares every replicated table across all nodes: a checksum over the text form of
 * every row ordered by key, then the keys whose rows differ or are missing, split into
 * those a dead letter explains and the others. Tables replicated with row filters or
 * column lists are expected to differ and will show up.
 *
 * Sessions run under the same pinned settings as replication (session-settings.ts): the
 * text of a timestamp, float or money value, and so the checksum, would otherwise depend
 * on each database's DateStyle, TimeZone, extra_float_digits, lc_monetary... Keys are
 * ordered by their text in the C collation, which is the same on every node.
 */
export async function checkMesh(config: ResolvedConfig, opts: CheckOptions = {}): Promise<TableCheck[]> {
  const maxKeys = opts.maxKeys ?? 20;
  const clients = new Map<string, pg.Client>();
  try {
    for (const n of config.nodes) {
      clients.set(
        n.name,
        await connect(n.conninfo, {
          connectTimeoutMs: 5000,
          applicationName: 'pgfleet-mm:check',
          settings: VALUE_TEXT_SETTINGS,
        }),
      );
    }
    const first = clients.get(config.nodes[0]?.name as string) as pg.Client;
    const tables: Array<{ schema: string; name: string }> = [];
    for (const t of config.tables) {
      if (t.table !== '*') tables.push({ schema: t.schema, name: t.table });
      else {
        const { rows } = await first.query(
          `SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind IN ('r','p') ORDER BY 1`,
          [t.schema],
        );
        for (const r of rows) tables.push({ schema: t.schema, name: r.name });
      }
    }
    const out: TableCheck[] = [];
    for (const t of tables) {
      out.push(await checkTable(clients, first, t, maxKeys));
    }
    return out;
  } finally {
    await Promise.all([...clients.values()].map((c) => c.end().catch(() => {})));
  }
}

async function checkTable(
  clients: Map<string, pg.Client>,
  first: pg.Client,
  t: { schema: string; name: string },
  maxKeys: number,
): Promise<TableCheck> {
  const id = `${t.schema}.${t.name}`;
  const q = quoteQualified(t.schema, t.name);
  const check: TableCheck = { table: id, nodes: {}, equal: true, differingKeys: [], deadLetterKeys: [] };
  try {
    // The key rows are matched on by the apply: primary key, else a unique NOT NULL key.
    // The same catalog read, and the same cast types, as the apply's (loadTargetTable).
    const target = await loadTargetTable(first, t.schema, t.name);
    const keyCols = (target?.uniqueKey ?? []).map((name) => ({
      name,
      type: target?.columns.get(name)?.type as string,
    }));
    const keyExpr = keyCols.length
      ? `ROW(${keyCols.map((k) => `t.${quoteIdent(k.name)}`).join(', ')})::text`
      : 'ROW(t.*)::text';
    const perNode = new Map<string, Map<string, string>>();
    for (const [name, c] of clients) {
      const { rows } = await c.query(`SELECT ${keyExpr} AS k, md5(ROW(t.*)::text) AS h FROM ONLY ${q} AS t`);
      const m = new Map<string, string>();
      for (const r of rows) m.set(r.k, r.h);
      perNode.set(name, m);
      const { rows: sum } = await c.query(
        `SELECT count(*)::int AS n, coalesce(md5(string_agg(h, '' ORDER BY k COLLATE "C")), md5('')) AS checksum
           FROM (SELECT ${keyExpr} AS k, md5(ROW(t.*)::text) AS h FROM ONLY ${q} AS t) s`,
      );
      check.nodes[name] = { rows: sum[0].n, checksum: sum[0].checksum };
    }
    const sums = new Set(Object.values(check.nodes).map((v) => v?.checksum));
    check.equal = sums.size === 1;
    if (check.equal) return check;
    const explained = await deadLetterKeys(clients, t, q, keyCols);
    const keys = new Set<string>();
    for (const m of perNode.values()) for (const k of m.keys()) keys.add(k);
    for (const k of [...keys].sort()) {
      const hs = new Set([...perNode.values()].map((m) => m.get(k) ?? '(missing)'));
      if (hs.size <= 1) continue;
      const why = explained.byKey.get(k) ?? explained.everyKey;
      if (why.length > 0) {
        if (check.deadLetterKeys.length < maxKeys) check.deadLetterKeys.push({ key: k, deadLetters: why });
      } else if (check.differingKeys.length < maxKeys) check.differingKeys.push(k);
      if (check.differingKeys.length >= maxKeys && check.deadLetterKeys.length >= maxKeys) break;
    }
  } catch (err) {
    check.equal = false;
    check.error = toPgfleetError(err).message;
  }
  return check;
}

/**
 * Keys named by skipped dead letters on any node, as check's key text (old and new key of
 * each change), and the dead letters of skipped TRUNCATEs of the table, which explain
 * every key. Values were recorded as the source's text under the same pinned settings,
 * so casting them to the key's types gives the same text as the table's own rows.
 */
async function deadLetterKeys(
  clients: Map<string, pg.Client>,
  t: { schema: string; name: string },
  q: string,
  keyCols: Array<{ name: string; type: string }>,
): Promise<{ byKey: Map<string, string[]>; everyKey: string[] }> {
  const byKey = new Map<string, string[]>();
  const everyKey: string[] = [];
  const keyOf = keyCols.length
    ? `(SELECT ROW(${keyCols.map((k) => `(img.j->>${quoteLiteral(k.name)})::${k.type}`).join(', ')})::text)`
    : `(SELECT ROW(r.*)::text FROM jsonb_populate_record(NULL::${q}, img.j) AS r)`;
  for (const [node, c] of clients) {
    const { rows: present } = await c.query(
      `SELECT to_regclass('pgfleet.dead_letter_changes') IS NOT NULL AS ok`,
    );
    if (!present[0]?.ok) continue;
    const { rows } = await c.query(
      `SELECT DISTINCT d.id::text AS id, ${keyOf} AS k
         FROM pgfleet.dead_letter_changes ch JOIN pgfleet.dead_letters d ON d.id = ch.dead_letter_id
              CROSS JOIN LATERAL (VALUES (ch.old), (ch.new)) AS img(j)
        WHERE ch.table_schema = $1 AND ch.table_name = $2 AND img.j IS NOT NULL AND ${SKIPPED}`,
      [t.schema, t.name],
    );
    for (const r of rows) {
      const list = byKey.get(r.k) ?? [];
      list.push(`${node}:${r.id}`);
      byKey.set(r.k, list);
    }
    const { rows: truncs } = await c.query(
      `SELECT DISTINCT d.id::text AS id
         FROM pgfleet.dead_letter_changes ch JOIN pgfleet.dead_letters d ON d.id = ch.dead_letter_id
        WHERE ch.kind = 'truncate' AND ch.new->'relations' @> jsonb_build_array(jsonb_build_object('schema', $1::text, 'name', $2::text))
          AND ${SKIPPED}`,
      [t.schema, t.name],
    );
    for (const r of truncs) everyKey.push(`${node}:${r.id}`);
  }
  return { byKey, everyKey };
}
