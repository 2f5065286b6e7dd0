import { deferrableProblem } from '../apply/target-table.js';
/** Facts gathered from one node, read-only, before anything is created. */
export interface NodeFacts {
  node: string;
  serverVersionNum: number;
  walLevel: string;
  trackCommitTimestamp: boolean;
  maxReplicationSlots: number;
  maxWalSenders: number;
  /** PostgreSQL 18+: max_active_replication_origins; older servers size origins by max_replication_slots. */
  maxReplicationOrigins: number;
  /** Slots that exist and are not ours (they use up max_replication_slots). */
  otherSlots: number;
  /** Our slots for this mesh that already exist (a re-run of init needs no room for them). */
  existingOwnSlots: number;
  /** Origins that exist and are not ours. */
  otherOrigins: number;
  existingOwnOrigins: number;
  /** Tables by `schema.table`. */
  tables: Map<string, TableFacts>;
}

export interface TableFacts {
  schema: string;
  name: string;
  /** Column name → format_type(atttypid, atttypmod), in attnum order. */
  columns: Array<{ name: string; type: string }>;
  hasPrimaryKey: boolean;
  /** relreplident: d default, n nothing, f full, i index. */
  replicaIdentity: string;
  /** Columns of the replica identity (primary key or index), empty for full/nothing. */
  identityColumns: string[];
  /** The primary key, else a unique index on NOT NULL columns (what rows are matched on under FULL); null when none. */
  uniqueKey: string[] | null;
  /** Names of DEFERRABLE primary key, unique and exclusion constraints. */
  deferrableUnique?: string[];
}

export interface Problem {
  node: string;
  table?: string;
  message: string;
}

/** The node's own tables, as `init` expands `schema.*` entries. */
export interface WantedTable {
  schema: string;
  name: string;
  columns?: string[];
}

/**
 * Everything wrong with one node for a mesh of `nodeCount` nodes, all at once.
 * Pure: the caller gathers facts, this names every problem with node and table.
 */
export function checkNode(f: NodeFacts, nodeCount: number, tables: WantedTable[]): Problem[] {
  const out: Problem[] = [];
  const p = (message: string, table?: string) =>
    out.push(table ? { node: f.node, table, message } : { node: f.node, message });
  const edges = nodeCount - 1;
  if (f.serverVersionNum < 150000)
    p(
      `PostgreSQL ${Math.floor(f.serverVersionNum / 10000)} is too old: 15 or newer is required (row filters, column lists)`,
    );
  if (f.walLevel !== 'logical') p(`wal_level is ${f.walLevel}: set wal_level = logical and restart`);
  if (!f.trackCommitTimestamp)
    p(
      'track_commit_timestamp is off: set track_commit_timestamp = on and restart (conflict resolution needs it)',
    );
  const slotsNeeded = edges - f.existingOwnSlots;
  const slotsFree = f.maxReplicationSlots - f.otherSlots - f.existingOwnSlots;
  if (slotsNeeded > slotsFree) {
    p(
      `max_replication_slots = ${f.maxReplicationSlots} leaves room for ${Math.max(0, slotsFree)} new slots, ${slotsNeeded} needed (${f.otherSlots} used by others)`,
    );
  }
  if (f.maxWalSenders < f.otherSlots + edges) {
    p(
      `max_wal_senders = ${f.maxWalSenders} is too low: ${edges} edge streams leave this node (plus ${f.otherSlots} other slots)`,
    );
  }
  const originsNeeded = edges - f.existingOwnOrigins;
  const originsFree = f.maxReplicationOrigins - f.otherOrigins - f.existingOwnOrigins;
  if (originsNeeded > originsFree) {
    const setting = f.serverVersionNum >= 180000 ? 'max_active_replication_origins' : 'max_replication_slots';
    p(
      `${setting} = ${f.maxReplicationOrigins} leaves room for ${Math.max(0, originsFree)} replication origins, ${originsNeeded} needed`,
    );
  }
  for (const t of tables) {
    const id = `${t.schema}.${t.name}`;
    const facts = f.tables.get(id);
    if (!facts) {
      p('table does not exist on this node', id);
      continue;
    }
    if (facts.replicaIdentity === 'n')
      p('REPLICA IDENTITY NOTHING: updates and deletes cannot be replicated', id);
    else if (facts.replicaIdentity === 'd' && !facts.hasPrimaryKey) {
      p('no primary key: add one (or a unique index on NOT NULL columns and REPLICA IDENTITY FULL)', id);
    } else if (facts.replicaIdentity === 'f' && !facts.uniqueKey) {
      // Matched on every column, a row two nodes update at once is "missing" on both (each
      // changed it), so each keeps its own version: that cannot converge.
      p(
        'REPLICA IDENTITY FULL without a primary key or a unique index on NOT NULL columns: rows could only be matched on every column, and two nodes updating a row at once would each keep their own version; add a primary key',
        id,
      );
    }
    if (facts.deferrableUnique?.length) p(deferrableProblem(facts.deferrableUnique), id);
    if (facts.replicaIdentity === 'f' && facts.uniqueKey && t.columns) {
      for (const k of facts.uniqueKey) {
        if (!t.columns.includes(k))
          p(`column list must include key column "${k}" (rows are matched on it)`, id);
      }
    }
    for (const c of t.columns ?? []) {
      if (!facts.columns.some((x) => x.name === c))
        p(`column list names "${c}", which the table does not have`, id);
    }
    if (t.columns && facts.replicaIdentity !== 'f') {
      for (const k of facts.identityColumns) {
        if (!t.columns.includes(k)) p(`column list must include replica identity column "${k}"`, id);
      }
    }
  }
  return out;
}

/** Tables whose column names or types differ from the first node that has them. */
export function compareTables(all: NodeFacts[], tables: WantedTable[]): Problem[] {
  const out: Problem[] = [];
  for (const t of tables) {
    const id = `${t.schema}.${t.name}`;
    const present = all.filter((f) => f.tables.has(id));
    const ref = present[0];
    if (!ref) continue;
    const refCols = (ref.tables.get(id) as TableFacts).columns;
    for (const other of present.slice(1)) {
      const cols = (other.tables.get(id) as TableFacts).columns;
      for (const c of refCols) {
        const o = cols.find((x) => x.name === c.name);
        if (!o)
          out.push({
            node: other.node,
            table: id,
            message: `column "${c.name}" (on ${ref.node}) is missing`,
          });
        else if (o.type !== c.type) {
          out.push({
            node: other.node,
            table: id,
            message: `column "${c.name}" is ${o.type}, but ${c.type} on ${ref.node}`,
          });
        }
      }
      for (const o of cols) {
        if (!refCols.some((c) => c.name === o.name)) {
          out.push({
            node: other.node,
            table: id,
            message: `column "${o.name}" does not exist on ${ref.node}`,
          });
        }
      }
    }
  }
  return out;
}

export function formatProblems(problems: Problem[]): string {
  return problems.map((p) => `  - ${p.node}${p.table ? ` ${p.table}` : ''}: ${p.message}`).join('\n');
}
