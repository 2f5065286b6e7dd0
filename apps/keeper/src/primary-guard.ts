import { probeHandshake } from '@pgfleet/connection';
import { fence, killServer, postmasterPid, type RoleInfo, terminateClientBackends } from '@pgfleet/roles';
import { errorText, type LoopContext } from './context.js';
import type { LocalSession } from './local-session.js';
import { announceDown } from './primary-loop.js';
import { decideServerWatch, INITIAL_SERVER_WATCH, observeHandshake } from './server-watch-decision.js';
import { KEEPER_APPLICATION_NAME, withSession } from './session.js';
import { noteFence } from './state.js';
import type { KeeperTiming } from './timing.js';
import { formatDuration } from './units.js';
import { applyVerdict, describeLease, type LeaseVerdict, leaseHeld } from './write-lease.js';

/**
 * Keeps the local primary from writing when it must not, whatever state its postmaster is
 * in. It owns the write lease (what /primary answers), the server watch (a timer, beside the
 * loop, checking that the postmaster still takes new connections) and the fence with its
 * escalation: SQL first; if that is not confirmed within `escalationMs`, SIGTERM to client
 * backends directly; if still not confirmed, the server is stopped hard (SIGKILL of the
 * postmaster and its children: self-STONITH, what Patroni's watchdog does to a whole host).
 * Every step that ends writes revokes the lease first, so /primary is 503 before it starts.
 */
export class PrimaryGuard {
  private timer: NodeJS.Timeout | undefined;
  /** The handshake under way, if any. */
  private probing: Promise<void> | null = null;
  private fencing: Promise<void> | null = null;
  private pgdata: string | undefined;
  private warnedNoPgdata = false;
  private lastVerdict = 'ok';
  private loggedHeld = false;

  constructor(
    private readonly ctx: LoopContext,
    private readonly session: LocalSession,
    private readonly timing: KeeperTiming,
  ) {
    this.pgdata = ctx.config.node.pgdata;
  }

  start(): void {
    const tick = () => {
      this.tick();
      if (!this.ctx.signal.aborted) this.timer = setTimeout(tick, this.timing.serverWatchMs);
    };
    this.timer = setTimeout(tick, this.timing.serverWatchMs);
  }

  stop(): void {
    clearTimeout(this.timer);
  }

  /** The data directory learned from the server when the config does not name one. */
  learnDataDirectory(dir: string): void {
    if (this.pgdata !== undefined) return;
    if (postmasterPid(dir) !== null) {
      this.pgdata = dir;
      this.ctx.logger.info({ pgdata: dir }, `local data directory ${dir} (from the server)`);
    }
  }

  get knowsDataDirectory(): boolean {
    return this.pgdata !== undefined;
  }

  /** True while the postmaster answered a new connection within the lease. */
  accepting(now: number): boolean {
    const w = this.ctx.state.serverWatch;
    return w.silentSince === null && w.lastAnswerAt !== null && now - w.lastAnswerAt < this.timing.leaseMs;
  }

  /** What /primary answers: an unfenced primary holding its lease, with no fence under way. */
  writable(now: number): boolean {
    const s = this.ctx.state;
    return s.role === 'primary' && !s.fenced && !s.fencing && leaseHeld(s.lease, now);
  }

  /** The loop read the local server: keep the guard's view of it current. */
  noteLocal(info: RoleInfo): void {
    const s = this.ctx.state;
    if (info.role === 'primary' && !info.fenced) {
      s.lastPrimaryAt = this.ctx.clock.now();
      // A server we stopped counts as serving again only once a new postmaster answered: a
      // read that was under way when we killed it says nothing.
      if (s.serverStoppedAt !== null && (s.serverWatch.lastAnswerAt ?? 0) > s.serverStoppedAt)
        s.serverStoppedAt = null;
    }
    if (info.role !== 'primary') this.revoke(`the local server is ${info.role}: ${info.reason}`);
  }

  /** Applies a lease verdict of the loop; `since` is when the evidence started to be gathered. */
  judge(v: LeaseVerdict, since: number): void {
    const s = this.ctx.state;
    s.lease = applyVerdict(s.lease, v, since, this.timing.leaseMs);
    this.logChange(v.reason);
  }

  /** Grants the lease now (the keeper just promoted its server with every gate passed). */
  grant(reason: string): void {
    this.judge({ kind: 'renew', reason }, this.ctx.clock.now());
  }

  /** Holds the lease until `until` (on etcd: never past the leader key's own deadline). */
  holdUntil(until: number, reason: string): void {
    this.ctx.state.lease = { until, reason };
    this.logChange(reason);
  }

  revoke(reason: string): void {
    const s = this.ctx.state;
    if (s.lease.until === null && s.lease.reason === reason) return;
    s.lease = { until: null, reason };
    this.logChange(reason);
  }

  /** Logs when holding changed since the last line (a lapse shows at the next judgement). */
  private logChange(_reason: string): void {
    const now = this.ctx.clock.now();
    const held = leaseHeld(this.ctx.state.lease, now);
    this.ctx.metrics.writeLease.set(held ? 1 : 0);
    if (held === this.loggedHeld) return;
    this.loggedHeld = held;
    this.ctx.logger[held ? 'info' : 'warn'](
      { event: held ? 'lease_held' : 'lease_lost' },
      `write lease ${describeLease(this.ctx.state.lease, now)}`,
    );
  }

  /** The timer beside the loop: handshake with the postmaster, then judge. */
  private tick(): void {
    const { state: s, clock } = this.ctx;
    const now = clock.now();
    const since = s.serverWatch.lastTickAt === null ? 0 : now - s.serverWatch.lastTickAt;
    s.serverWatch = { ...s.serverWatch, lastTickAt: now };
    this.evaluate(since);
    // A standby's postmaster is not ours to watch (a primary's is, also while it is down).
    if (s.role !== 'standby') void this.probe();
  }

  /** One handshake with the postmaster (none when one is under way); resolves when it ended. */
  private probe(): Promise<void> {
    const { state: s, clock } = this.ctx;
    if (this.probing || this.ctx.signal.aborted) return this.probing ?? Promise.resolve();
    const timeoutMs = this.timing.serverWatchTimeoutMs;
    const started = clock.now();
    this.probing = probeHandshake(this.ctx.config.node.conninfo, { timeoutMs })
      .then((r) => {
        const at = clock.now();
        // A timeout that fired long after it was due says our loop stalled, not the server.
        if (!r.answered && r.cause === 'timeout' && at - started > timeoutMs + Math.max(50, timeoutMs / 2))
          return;
        s.serverWatch = r.answered
          ? observeHandshake(s.serverWatch, r, at)
          : r.cause === 'refused'
            ? // Nothing listens: the postmaster is gone and its children exit by themselves.
              // The loop sees it too and takes the fast path; nothing here to fence.
              { ...INITIAL_SERVER_WATCH, lastTickAt: s.serverWatch.lastTickAt }
            : observeHandshake(s.serverWatch, r, at);
        if (!r.answered && r.cause === 'refused') {
          this.revoke(`the local postmaster is gone (${r.reason})`);
          // The loop confirms and takes the fast path at once, not at its next tick.
          if (s.role === 'primary') this.ctx.wake();
        }
        this.evaluate(0);
      })
      .catch((err) => this.ctx.logger.debug({ err: errorText(err) }, 'server watch probe failed'))
      .finally(() => {
        this.probing = null;
      });
    return this.probing;
  }

  /**
   * accepting(), with a handshake first when there is no recent one (the first iteration after
   * start or a promotion): the lease is not withheld for want of a probe that was not made.
   */
  async checkAccepting(now: number): Promise<boolean> {
    if (!this.accepting(now) && this.ctx.state.serverWatch.silentSince === null) await this.probe();
    return this.accepting(this.ctx.clock.now());
  }

  private guarding(): boolean {
    const s = this.ctx.state;
    return (
      s.lastServingRole === 'primary' &&
      s.role !== 'standby' &&
      !s.fenced &&
      !s.paused &&
      !s.holdFence &&
      !s.switchoverRunning &&
      s.serverStoppedAt === null
    );
  }

  private evaluate(sinceLastTickMs: number): void {
    const s = this.ctx.state;
    const v = decideServerWatch(
      {
        now: this.ctx.clock.now(),
        guarding: this.guarding(),
        lastPrimaryAt: s.lastPrimaryAt,
        ...(s.role === 'down' && s.downCause ? { downCause: s.downCause } : {}),
        watch: s.serverWatch,
        sinceLastTickMs,
      },
      { fenceAfterMs: this.timing.fenceAfterMs, tickMs: this.timing.serverWatchMs },
    );
    // On etcd: the leader key's lease runs out soon and the loop did not renew it (stuck in a
    // slow call, or etcd gone): fence now, whatever the loop is doing, so that writes end
    // before a standby can win the key.
    const fenceBy = s.dcs.fenceBy;
    if (fenceBy !== null && this.ctx.clock.now() >= fenceBy && s.role === 'primary' && this.guarding()) {
      s.dcs.fenceBy = null;
      s.dcs.heldUntil = null;
      void this.fence('fencing: the leader key was not renewed before its fence deadline');
    }
    if (v.kind !== this.lastVerdict && v.kind !== 'ok')
      this.ctx.logger.warn({ event: `server_${v.kind}` }, v.reason);
    this.lastVerdict = v.kind;
    if (v.kind === 'suspect') this.revoke(v.reason);
    else if (v.kind === 'recheck') {
      this.revoke(v.reason);
      this.ctx.wake();
    } else if (v.kind === 'stop') this.stopServer(v.reason);
  }

  /**
   * Fences the local server: lease revoked first, then SQL (ALTER SYSTEM + reload + terminate,
   * on the keeper's long-lived session, which works even when the postmaster takes no new
   * connection); escalating to signals and a hard stop when SQL is not confirmed in time.
   * Resolves when the server is fenced or stopped (or could not be: logged).
   */
  fence(reason: string): Promise<void> {
    this.fencing ??= this.runFence(reason).finally(() => {
      this.fencing = null;
      this.ctx.state.fencing = false;
    });
    return this.fencing;
  }

  private async runFence(reason: string): Promise<void> {
    const { state: s, config: c, logger } = this.ctx;
    const started = this.ctx.clock.now();
    this.revoke(reason);
    s.fencing = true;
    this.ctx.record('fence', reason);
    const sqlFence = (timeoutMs: number, fresh: boolean) => {
      const run = (q: Parameters<typeof fence>[0]) =>
        fence(q, {
          reason,
          node: c.node.name,
          keepApplicationNames: [KEEPER_APPLICATION_NAME],
          timeoutMs: Math.max(50, timeoutMs - 50),
          terminateWaitMs: 0,
        });
      return fresh
        ? withSession(c.node.conninfo, { timeoutMs, node: c.node.name, action: 'fence' }, run)
        : this.session.run('fence', run, undefined, timeoutMs);
    };
    try {
      const res = await sqlFence(this.timing.escalationMs, false);
      this.fenced(reason, `fenced: ${res.terminated} client sessions terminated`, started);
      return;
    } catch (err) {
      logger.warn(
        { err: errorText(err) },
        `fence not confirmed within ${formatDuration(this.timing.escalationMs)}: ${errorText(err)}`,
      );
    }
    if (!this.pgdata) {
      this.noDataDirectory('the fence could not be confirmed');
      return;
    }
    try {
      const pids = terminateClientBackends(this.pgdata);
      logger.warn(
        { event: 'backends_terminated', pids },
        `sent SIGTERM to ${pids.length} client backends directly`,
      );
      const res = await sqlFence(this.timing.escalationMs, true);
      this.fenced(
        reason,
        `fenced after terminating client backends directly: ${res.terminated} more`,
        started,
      );
      return;
    } catch (err) {
      logger.warn({ err: errorText(err) }, `fence still not confirmed: ${errorText(err)}`);
    }
    this.stopServer(`${reason.replace(/^fencing: /, '')}; the fence could not be confirmed`);
  }

  private fenced(reason: string, message: string, started: number): void {
    const { state: s, metrics } = this.ctx;
    noteFence(s, reason.replace(/^fencing: /, ''));
    s.counters.fences++;
    metrics.fences.inc();
    metrics.fenced.set(1);
    this.ctx.logger.warn(
      { event: 'fenced', ms: Math.round(this.ctx.clock.now() - started) },
      `${message} (${formatDuration(this.ctx.clock.now() - started)})`,
    );
    this.ctx.hook('fence', reason);
  }

  /**
   * Self-STONITH: SIGKILL of the postmaster and all its children, for a server that cannot be
   * fenced with SQL. Then the witness and the standby's keeper are told at once (fast path).
   */
  stopServer(reason: string): void {
    const { state: s, logger } = this.ctx;
    this.revoke(`stopping the server: ${reason}`);
    if (!this.pgdata) {
      this.noDataDirectory(reason);
      void this.fence(`fencing: ${reason}`);
      return;
    }
    let killed: number[];
    try {
      killed = killServer(this.pgdata);
    } catch (err) {
      logger.error({ err: errorText(err) }, `could not stop the server: ${errorText(err)}`);
      return;
    }
    s.serverStoppedAt = this.ctx.clock.now();
    s.serverWatch = { ...INITIAL_SERVER_WATCH, lastTickAt: s.serverWatch.lastTickAt };
    if (killed.length === 0) {
      logger.info({ event: 'server_gone' }, `no server runs in ${this.pgdata} any more: ${reason}`);
      return;
    }
    s.counters.serverStops++;
    this.ctx.metrics.serverStops.inc();
    const why = `stopped the local server hard (SIGKILL of ${killed.length} processes): ${reason}`;
    this.ctx.record('stop', why, { event: 'server_stopped', pids: killed });
    this.ctx.hook('fence', why);
    s.notifiedPeerDown = true;
    void announceDown(this.ctx, why);
  }

  private noDataDirectory(what: string): void {
    if (this.warnedNoPgdata) return;
    this.warnedNoPgdata = true;
    this.ctx.logger.error(
      { event: 'cannot_escalate' },
      `${what}, and the keeper cannot stop its server without SQL: set node.pgdata (the server's data directory on this host)`,
    );
  }
}
