import { pause, quoteLiteral, toPgfleetError } from '@pgfleet/connection';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { NodeConfig, ResolvedConfig } from '../config.js';
import { edgesFor } from '../naming.js';
import { releaseNodeLock, tryNodeLock } from './claim.js';
import { haSession, primaryFacts, standbyFacts } from './node-facts.js';
import { assertWritable, findPrimary, type PrimaryTarget } from './primary.js';
import { type NodeHaStatus, planNodeHa } from './readiness.js';
import { ensureHaTables, resyncEdge } from './resync.js';

export interface NodeSupervisorOptions {
  node: NodeConfig;
  config: ResolvedConfig;
  logger: Logger;
  signal: AbortSignal;
  /** Replicator identity, recorded with the edge claims a re-sync takes. */
  holder: string;
  now?: () => Date;
}

/** A running-xacts record at most this often while synced slots wait to become sync-ready. */
const SNAPSHOT_EVERY_MS = 1000;

/**
 * Looks after one primary + standby node for the mesh, every `ha.checkIntervalMs`: finds its
 * primary, reports whether a failover now would lose or duplicate nothing (failover-ready),
 * and does what the primary needs after a failover: on 17+, synchronized_standby_slots
 * naming exactly the standby slots that exist there (so no peer receives a change the
 * standby lacks, and a node running alone does not hold its peers back); on any major, the
 * re-sync of outgoing slots that did not survive the promotion. Every replicator whose
 * edges touch the node runs one; a session advisory lock on the primary lets one act at a time.
 */
export class NodeSupervisor {
  private st: NodeHaStatus;
  private readonly log: Logger;
  private lastSnapshot = 0;
  private lastSummary = '';

  constructor(private readonly o: NodeSupervisorOptions) {
    this.log = o.logger.child({ component: 'ha', node: o.node.name });
    this.st = {
      node: o.node.name,
      primary: null,
      procedure: null,
      ready: false,
      reasons: ['not checked yet'],
      standbys: [],
      resyncPending: [],
      checkedAt: null,
    };
  }

  status(): NodeHaStatus {
    return structuredClone(this.st);
  }

  async run(): Promise<void> {
    const { signal, config } = this.o;
    while (!signal.aborted) {
      await this.check().catch((err: unknown) => {
        this.log.warn({ err: toPgfleetError(err).message }, 'node check failed');
      });
      await pause(config.ha.checkIntervalMs, signal);
    }
  }

  /** One round: facts, plan, actions. Returns the node's status. */
  async check(): Promise<NodeHaStatus> {
    const { node, config, signal } = this.o;
    const now = this.o.now ?? (() => new Date());
    const timeoutMs = Math.max(1000, config.ha.checkIntervalMs * 2);
    const out = edgesFor(config.nodes)
      .filter((e) => e.source === node.name)
      .map((e) => e.slot);
    let primary: PrimaryTarget;
    try {
      primary = await findPrimary(node, { timeoutMs, signal });
    } catch (err) {
      this.report(planNodeHa(node.name, null, toPgfleetError(err).message, [], now()).status);
      return this.status();
    }
    let client: pg.Client | null = null;
    try {
      client = await haSession(primary.conninfo, { timeoutMs, signal }, 'primary');
      await assertWritable(client, node.name, primary);
      const pf = await primaryFacts(client, node, config.nodes, primary);
      const standbys = await Promise.all(
        node.servers
          .filter((s) => s.name !== primary.server)
          .map((s) => standbyFacts(s, out, { timeoutMs, signal })),
      );
      const plan = planNodeHa(node.name, pf, null, standbys, now());
      const act =
        plan.setSynchronizedStandbySlots !== null ||
        plan.resync.length > 0 ||
        plan.markLive.length > 0 ||
        (plan.logStandbySnapshot && Date.now() - this.lastSnapshot >= SNAPSHOT_EVERY_MS);
      if (act && (await tryNodeLock(client, node.name))) {
        try {
          await this.act(client, primary, pf.major, plan);
        } finally {
          await releaseNodeLock(client, node.name).catch(() => {});
        }
      }
      this.report(plan.status);
    } catch (err) {
      this.report(planNodeHa(node.name, null, toPgfleetError(err).message, [], now()).status);
    } finally {
      await client?.end().catch(() => {});
    }
    return this.status();
  }

  private async act(
    client: pg.Client,
    primary: PrimaryTarget,
    major: number,
    plan: ReturnType<typeof planNodeHa>,
  ): Promise<void> {
    if (plan.setSynchronizedStandbySlots !== null) {
      // Exactly the standby slots that exist here: a missing one would hold every logical
      // walsender back until it appears (slot.c, StandbySlotsHaveCaughtup), which is right
      // for a standby that is merely away, but not for one that does not exist any more.
      await client.query(
        `ALTER SYSTEM SET synchronized_standby_slots = ${quoteLiteral(plan.setSynchronizedStandbySlots)}`,
      );
      await client.query('SELECT pg_reload_conf()');
      this.log.info(
        { server: primary.server, synchronizedStandbySlots: plan.setSynchronizedStandbySlots },
        'synchronized_standby_slots set: no peer receives a change before these standbys have it',
      );
    }
    if (plan.markLive.length > 0) {
      await ensureHaTables(client);
      await client.query(
        `INSERT INTO pgfleet.slot_resync (slot, state) SELECT unnest($1::text[]), 'live' ON CONFLICT (slot) DO NOTHING`,
        [plan.markLive],
      );
    }
    if (plan.logStandbySnapshot && Date.now() - this.lastSnapshot >= SNAPSHOT_EVERY_MS) {
      this.lastSnapshot = Date.now();
      await client.query('SELECT pg_log_standby_snapshot()');
    }
    // One re-sync per peer, side by side: each holds only its own peer's claim.
    await Promise.all(plan.resync.map((slot) => this.resync(slot, primary, major)));
  }

  private async resync(slot: string, primary: PrimaryTarget, major: number): Promise<void> {
    const { node, config, signal } = this.o;
    if (signal.aborted) return;
    const edge = edgesFor(config.nodes).find((e) => e.slot === slot && e.source === node.name);
    if (!edge) return;
    const peerNode = config.nodes.find((n) => n.name === edge.target) as NodeConfig;
    try {
      const peer = await findPrimary(peerNode, { timeoutMs: 5000, signal });
      this.log.warn(
        { edge: edge.id, server: primary.server },
        `slot ${slot} is missing on the new primary of ${node.name}: re-creating it and re-syncing ${edge.target}`,
      );
      await resyncEdge({
        config,
        edge,
        source: primary,
        peer,
        sourceMajor: major,
        holder: this.o.holder,
        logger: this.o.logger,
        signal,
      });
    } catch (err) {
      const e = toPgfleetError(err);
      this.log.warn(
        { edge: edge.id, err: { code: e.code, message: e.message } },
        're-sync not done; retrying',
      );
    }
  }

  private report(st: NodeHaStatus): void {
    this.st = st;
    const summary = `${st.primary}|${st.ready}|${st.reasons.join(';')}|${st.standbys.map((s) => s.reasons.join(',')).join(';')}`;
    if (summary === this.lastSummary) return;
    this.lastSummary = summary;
    const fields = {
      primary: st.primary,
      procedure: st.procedure,
      reasons: st.reasons,
      standbys: st.standbys.map((s) => ({ server: s.server, ready: s.ready, reasons: s.reasons })),
    };
    if (st.ready) this.log.info(fields, 'node is failover-ready');
    else this.log.info(fields, 'node is not failover-ready');
  }
}
