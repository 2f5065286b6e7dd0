import { connect, quoteIdent, quoteQualified, toPgfleetError } from '@pgfleet/connection';
import type pg from 'pg';
import type { ResolvedConfig } from './config.js';

export interface TableCheck {
  table: string;
  /** Row count and checksum per node (null when the node could not be read). */
  nodes: Record<string, { rows: number; checksum: string } | null>;
  equal: boolean;
  /** Primary keys (as text) whose rows differ or are missing somewhere; at most `maxKeys`. */
  differingKeys: string[];
  error?: string;
}

export interface CheckOptions {
  /** Most differing keys to list per table (default 20). */
  maxKeys?: number;
}

/**
 * Compares every replicated table across all nodes: a checksum over the text form of
 * every row ordered by primary key, then the keys whose rows differ or are missing. Tables
 * replicated with row filters or column lists are expected to differ and will show up.
 */
export async function checkMesh(config: ResolvedConfig, opts: CheckOptions = {}): Promise<TableCheck[]> {
  const maxKeys = opts.maxKeys ?? 20;
  const clients = new Map<string, pg.Client>();
  try {
    for (const n of config.nodes) {
      clients.set(
        n.name,
        await connect(n.conninfo, { connectTimeoutMs: 5000, applicationName: 'pgfleet-mm:check' }),
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
      const id = `${t.schema}.${t.name}`;
      const q = quoteQualified(t.schema, t.name);
      const check: TableCheck = { table: id, nodes: {}, equal: true, differingKeys: [] };
      try {
        const { rows: keyRows } = await first.query(
          `SELECT a.attname AS name FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
            WHERE i.indrelid = to_regclass($1) AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)`,
          [q],
        );
        const keyExpr = keyRows.length
          ? `ROW(${keyRows.map((r) => `t.${quoteIdent(r.name)}`).join(', ')})::text`
          : 'ROW(t.*)::text';
        const perNode = new Map<string, Map<string, string>>();
        for (const [name, c] of clients) {
          const { rows } = await c.query(
            `SELECT ${keyExpr} AS k, md5(ROW(t.*)::text) AS h FROM ONLY ${q} AS t ORDER BY 1`,
          );
          const m = new Map<string, string>();
          for (const r of rows) m.set(r.k, r.h);
          perNode.set(name, m);
          const { rows: sum } = await c.query(
            `SELECT count(*)::int AS n, coalesce(md5(string_agg(h, '' ORDER BY k)), md5('')) AS checksum
               FROM (SELECT ${keyExpr} AS k, md5(ROW(t.*)::text) AS h FROM ONLY ${q} AS t) s`,
          );
          check.nodes[name] = { rows: sum[0].n, checksum: sum[0].checksum };
        }
        const sums = new Set(Object.values(check.nodes).map((v) => v?.checksum));
        check.equal = sums.size === 1;
        if (!check.equal) {
          const keys = new Set<string>();
          for (const m of perNode.values()) for (const k of m.keys()) keys.add(k);
          for (const k of [...keys].sort()) {
            const hs = new Set([...perNode.values()].map((m) => m.get(k) ?? '(missing)'));
            if (hs.size > 1) check.differingKeys.push(k);
            if (check.differingKeys.length >= maxKeys) break;
          }
        }
      } catch (err) {
        check.equal = false;
        check.error = toPgfleetError(err).message;
      }
      out.push(check);
    }
    return out;
  } finally {
    await Promise.all([...clients.values()].map((c) => c.end().catch(() => {})));
  }
}
