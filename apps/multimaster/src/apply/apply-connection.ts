import type pg from 'pg';
import type { ConflictSqlContext, GroupShape } from './group-sql.js';
import {
  callSql,
  functionParamCount,
  groupCallSql,
  groupFunctionSql,
  procedureParamCount,
  procedureSql,
  type TxShape,
} from './shape-sql.js';

/** Procedures per session at most: beyond, transactions of new shapes are streamed with group functions. */
const MAX_PROCEDURES = 200;

/**
 * The apply session as the applier uses it: statements written back to back without
 * waiting (node-pg's pipeline mode), the socket corked for the rest of the event-loop turn
 * so that a burst leaves in one write, and the pg_temp procedures and functions created
 * on first use (their CREATE travels in the same pipeline, ahead of the first call).
 */
export class ApplyConnection {
  private corked = false;
  private pendingCount = 0;
  private waiters: Array<{ below: number; resolve: () => void }> = [];
  private readonly procedures = new Map<string, { name: string; call: string }>();
  private readonly functions = new Map<string, { name: string; call: string }>();
  private counter = 0;

  constructor(
    readonly db: pg.Client,
    private readonly edge: { id: string; origin: string },
    /** A statement whose answer nobody awaits (a CREATE) failed. */
    private readonly onBackgroundError: (err: Error) => void,
  ) {}

  /** Statements sent and not yet answered. */
  get pending(): number {
    return this.pendingCount;
  }

  /**
   * Sends a statement without waiting for the ones before it. `name` makes it a named
   * prepared statement (parsed and planned once per session).
   */
  send(text: string, values: unknown[] = [], name?: string): Promise<pg.QueryResult> {
    this.cork();
    const p = this.db.query(name ? { name, text, values } : { text, values });
    this.pendingCount++;
    const done = () => {
      this.pendingCount--;
      this.wake();
    };
    p.then(done, done);
    return p;
  }

  /** Resolves once fewer than `below` statements are unanswered. */
  whenPendingBelow(below: number): Promise<void> {
    if (this.pendingCount < below) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ below, resolve }));
  }

  private wake(): void {
    if (this.waiters.length === 0) return;
    const keep: typeof this.waiters = [];
    for (const w of this.waiters) {
      if (this.pendingCount < w.below) w.resolve();
      else keep.push(w);
    }
    this.waiters = keep;
  }

  /** The transaction procedure for a shape (created on first use), or null when there are too many already. */
  procedure(
    shapeKey: string,
    shape: TxShape,
    ctx: (g: GroupShape) => ConflictSqlContext,
  ): { name: string; call: string } | null {
    let p = this.procedures.get(shapeKey);
    if (!p) {
      if (this.procedures.size >= MAX_PROCEDURES) return null;
      const name = `pgf_s${this.counter++}`;
      p = { name, call: callSql(name, procedureParamCount(shape)) };
      this.procedures.set(shapeKey, p);
      for (const sql of procedureSql(name, shape, ctx, this.edge))
        this.send(sql).catch(this.onBackgroundError);
    }
    return p;
  }

  /** The group function for a group shape (created on first use). */
  groupFunction(shapeKey: string, g: GroupShape, ctx: ConflictSqlContext): { name: string; call: string } {
    let f = this.functions.get(shapeKey);
    if (!f) {
      const name = `pgf_g${this.counter++}`;
      f = { name, call: groupCallSql(name, functionParamCount(g)) };
      this.functions.set(shapeKey, f);
      this.send(groupFunctionSql(name, g, ctx)).catch(this.onBackgroundError);
    }
    return f;
  }

  /**
   * Holds the socket's writes until the current turn of the event loop ends, so the
   * statements queued meanwhile leave in one write instead of one syscall each.
   */
  private cork(): void {
    if (this.corked) return;
    const stream = (this.db as unknown as { connection?: { stream?: { cork?(): void; uncork?(): void } } })
      .connection?.stream;
    if (!stream?.cork || !stream.uncork) return;
    this.corked = true;
    stream.cork();
    setImmediate(() => {
      this.corked = false;
      stream.uncork?.();
    });
  }
}
