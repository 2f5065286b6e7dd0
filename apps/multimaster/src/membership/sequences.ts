import { connect, quoteIdent, quoteQualified, toPgfleetError } from '@pgfleet/connection';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { ResolvedConfig } from '../config.js';
import { expandTables, gatherFacts } from '../init/init.js';
import { edgesFor } from '../naming.js';
import { MembershipError } from './errors.js';
import {
  planSequenceOffsets,
  type SequenceFacts,
  type SequenceState,
  type SequenceStep,
} from './sequence-plan.js';

export interface SequenceOffsetOptions {
  /** Carry the plan out; without it only report what would change. */
  apply?: boolean;
  /** Values step by this much (default: the number of nodes; larger leaves room for new nodes). */
  stride?: number;
  logger?: Logger;
  connectTimeoutMs?: number;
}

export interface SequenceOffsetReport {
  stride: number;
  applied: boolean;
  /** One row per node and sequence; bigints as decimal strings. */
  steps: Array<{
    node: string;
    sequence: string;
    usedBy: string[];
    residue: string;
    action: 'unchanged' | 'alter' | 'missing' | 'invalid';
    current?: { increment: string; next: string };
    target?: { increment: string; start: string };
    reason?: string;
  }>;
}

// Sequences behind a replicated column: a default calling nextval() (serial or hand-made)
// and identity columns (the sequence depends on the column with deptype 'i').
const SEQUENCES_SQL = `
  WITH cols AS (
    SELECT n.nspname AS schema, c.relname AS tbl, a.attname AS col, a.attrelid, a.attnum
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
     WHERE (n.nspname, c.relname) IN (SELECT * FROM unnest($1::text[], $2::text[]))),
  uses AS (
    SELECT cols.*, d.refobjid AS seq
      FROM cols JOIN pg_attrdef ad ON ad.adrelid = cols.attrelid AND ad.adnum = cols.attnum
      JOIN pg_depend d ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid AND d.refclassid = 'pg_class'::regclass
    UNION
    SELECT cols.*, d.objid
      FROM cols JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
       AND d.refobjid = cols.attrelid AND d.refobjsubid = cols.attnum AND d.deptype = 'i')
  SELECT u.schema, u.tbl, u.col, sn.nspname AS seq_schema, s.relname AS seq_name,
         ps.increment_by::text AS increment, ps.min_value::text AS min, ps.max_value::text AS max
    FROM uses u JOIN pg_class s ON s.oid = u.seq AND s.relkind = 'S'
    JOIN pg_namespace sn ON sn.oid = s.relnamespace
    JOIN pg_sequences ps ON ps.schemaname = sn.nspname AND ps.sequencename = s.relname
   ORDER BY 4, 5, 1, 2, 3`;

const big = (v: unknown): bigint | null => {
  if (v === null || v === undefined) return null;
  try {
    return BigInt(String(v));
  } catch {
    return null;
  }
};

/**
 * Gives every sequence behind a replicated column node-unique values: on node i it steps by
 * `stride` and restarts at the first value ≡ i+1 (mod stride) above the largest value any
 * node holds (see planSequenceOffsets). Sequences are not replicated, so without this two
 * nodes hand out the same key. Values another node hands out between the read and the
 * ALTER could still land in this node's class above the ceiling: run it while writes that
 * use these sequences are quiet, or with a stride that leaves no such overlap.
 */
export async function sequenceOffsets(
  config: ResolvedConfig,
  opts: SequenceOffsetOptions = {},
): Promise<SequenceOffsetReport> {
  const log = opts.logger?.child({ component: 'sequences' });
  const stride = opts.stride ?? config.nodes.length;
  if (!Number.isInteger(stride) || stride < config.nodes.length) {
    throw new MembershipError(
      'MEMBERSHIP_INVALID',
      `stride ${stride} must be an integer of at least the number of nodes (${config.nodes.length})`,
      { stride },
    );
  }
  const clients = new Map<string, pg.Client>();
  try {
    for (const n of config.nodes) {
      try {
        clients.set(
          n.name,
          await connect(n.conninfo, {
            connectTimeoutMs: opts.connectTimeoutMs ?? 5000,
            applicationName: 'pgfleet-mm:sequences',
          }),
        );
      } catch (err) {
        throw toPgfleetError(err, { node: n.name, action: 'sequence offsets' });
      }
    }
    const edges = edgesFor(config.nodes);
    const schemas = [...new Set(config.tables.map((t) => t.schema))];
    const facts = [];
    for (const [name, c] of clients) facts.push(await gatherFacts(c, name, edges, schemas));
    const tables = expandTables(config.tables, facts);
    const bySeq = new Map<string, SequenceFacts>();
    const seqNames = new Map<string, { schema: string; name: string }>();
    for (const [name, c] of clients) {
      const { rows } = await c.query(SEQUENCES_SQL, [
        tables.map((t) => t.schema),
        tables.map((t) => t.table),
      ]);
      const colMax = new Map<string, bigint | null>();
      for (const r of rows) {
        const seqId = `${r.seq_schema}.${r.seq_name}`;
        let f = bySeq.get(seqId);
        if (!f) {
          f = { sequence: seqId, usedBy: [], perNode: {} };
          bySeq.set(seqId, f);
          seqNames.set(seqId, { schema: r.seq_schema, name: r.seq_name });
        }
        const col = `${r.schema}.${r.tbl}.${r.col}`;
        if (!f.usedBy.includes(col)) f.usedBy.push(col);
        const { rows: m } = await c.query(
          `SELECT max(${quoteIdent(r.col)})::text AS m FROM ONLY ${quoteQualified(r.schema, r.tbl)}`,
        );
        const cm = big(m[0]?.m);
        const prev = colMax.get(seqId) ?? null;
        colMax.set(seqId, prev === null || (cm !== null && cm > prev) ? cm : prev);
        if (!f.perNode[name]) {
          const { rows: sv } = await c.query(
            `SELECT last_value::text AS last, is_called FROM ${quoteQualified(r.seq_schema, r.seq_name)}`,
          );
          const last = big(sv[0].last) as bigint;
          const increment = big(r.increment) as bigint;
          const st: SequenceState = {
            increment,
            minValue: big(r.min) as bigint,
            maxValue: big(r.max) as bigint,
            next: sv[0].is_called ? last + increment : last,
            lastIssued: sv[0].is_called ? last : null,
            columnMax: null,
          };
          f.perNode[name] = st;
        }
        (f.perNode[name] as SequenceState).columnMax = colMax.get(seqId) ?? null;
      }
    }
    const seqs = [...bySeq.values()];
    for (const s of seqs) for (const n of config.nodes) if (!(n.name in s.perNode)) s.perNode[n.name] = null;
    const steps = planSequenceOffsets(
      config.nodes.map((n) => n.name),
      seqs,
      BigInt(stride),
    );
    const invalid = steps.filter((s) => s.action.kind === 'invalid');
    if (opts.apply && invalid.length) {
      throw new MembershipError(
        'SEQUENCE_OFFSET_INVALID',
        `cannot give node-unique values to: ${invalid.map((s) => `${s.node} ${s.sequence} (${(s.action as { reason: string }).reason})`).join('; ')}; nothing was changed`,
        { sequences: invalid.map((s) => ({ node: s.node, sequence: s.sequence })) },
      );
    }
    if (opts.apply) {
      for (const s of steps) {
        if (s.action.kind !== 'alter') continue;
        const id = seqNames.get(s.sequence) as { schema: string; name: string };
        const q = quoteQualified(id.schema, id.name);
        await (clients.get(s.node) as pg.Client).query(
          `ALTER SEQUENCE ${q} INCREMENT BY ${s.action.increment} START WITH ${s.action.start} RESTART WITH ${s.action.start}`,
        );
        log?.info(
          {
            node: s.node,
            sequence: s.sequence,
            start: String(s.action.start),
            increment: String(s.action.increment),
          },
          'sequence aligned',
        );
      }
    }
    return { stride, applied: opts.apply === true, steps: steps.map(toReportStep) };
  } finally {
    await Promise.all([...clients.values()].map((c) => c.end().catch(() => {})));
  }
}

function toReportStep(s: SequenceStep): SequenceOffsetReport['steps'][number] {
  const base = { node: s.node, sequence: s.sequence, usedBy: s.usedBy, residue: String(s.residue) };
  switch (s.action.kind) {
    case 'unchanged':
      return {
        ...base,
        action: 'unchanged',
        current: { increment: String(s.action.increment), next: String(s.action.next) },
      };
    case 'alter':
      return {
        ...base,
        action: 'alter',
        current: { increment: String(s.action.from.increment), next: String(s.action.from.next) },
        target: { increment: String(s.action.increment), start: String(s.action.start) },
      };
    case 'missing':
      return { ...base, action: 'missing', reason: 'sequence does not exist on this node' };
    case 'invalid':
      return { ...base, action: 'invalid', reason: s.action.reason };
  }
}
