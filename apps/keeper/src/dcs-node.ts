import { parseConninfo, quoteLiteral, redactConninfo, withConninfo } from '@pgfleet/connection';
import { readConfiguredSetting } from '@pgfleet/roles';
import type { KeeperConfig } from './config.js';
import { errorText, type LoopContext } from './context.js';
import type { ClusterSnapshot, Dcs, MemberRecord, MemberState } from './dcs/index.js';
import type { LocalFacts } from './local-facts.js';

/**
 * What the keeper loop on etcd shares between primary and standby mode: the member key it
 * publishes each iteration, what it remembers of the leader from the snapshots it reads, and
 * how a standby follows whichever member holds the leader key (primary_conninfo + reload, and
 * the replication slot the standby streams with, created by the primary).
 */

/** Patroni's convention: a member's physical slot is its name, lower case, [a-z0-9_] only. */
export function slotName(member: string): string {
  return member.toLowerCase().replace(/[^a-z0-9_]/g, '_');
}

/** This keeper's member key: what `list` and the other keepers' decisions read. */
export function memberState(ctx: LoopContext, local: LocalFacts): MemberState {
  const { config: c, state: s } = ctx;
  const info = local.info;
  const replay = local.standby?.replay;
  const receiver = local.standby?.receiver ?? null;
  const streaming = info.role === 'standby' && receiver?.status === 'streaming';
  const self = c.cluster.members.find((m) => m.name === c.node.name);
  const keeperUrl =
    self?.keeperUrl ??
    `http://${c.http.host.includes(':') ? `[${c.http.host}]` : c.http.host}:${c.http.port}`;
  return {
    role: info.role,
    state:
      info.role === 'primary'
        ? info.fenced
          ? 'fenced'
          : 'running'
        : info.role === 'standby'
          ? streaming
            ? 'streaming'
            : (receiver?.status ?? 'not streaming')
          : `down: ${info.downCause ?? 'unknown'}`,
    timeline: info.role === 'down' ? s.timeline : (info.timeline ?? null),
    walLsn: info.role === 'primary' ? (info.lsn ?? null) : null,
    receivedLsn: replay?.receiveLsn ?? null,
    replayedLsn: replay?.replayLsn ?? null,
    lagBytes: info.role === 'standby' && s.lagBytes !== null ? Number(s.lagBytes) : null,
    streaming,
    upstream: streaming ? (s.dcs.leader?.name ?? null) : null,
    fenced: info.role === 'primary' && (info.fenced ?? false),
    tags: c.tags,
    keeperUrl,
    conninfo: self?.conninfo ?? c.node.conninfo,
  };
}

/**
 * Folds a fresh snapshot into the keeper's memory: the leader (with its last published position
 * and timeline, what a failover checks candidates against) and who streamed while it led.
 */
export function noteSnapshot(ctx: LoopContext, snap: ClusterSnapshot, selfStreaming: boolean): void {
  const d = ctx.state.dcs;
  d.snapshot = snap;
  d.readAt = ctx.clock.now();
  // The cluster-wide pause (pgfleet-keeper pause) is the config key in etcd.
  if (snap.config.paused !== ctx.state.paused) {
    ctx.state.paused = snap.config.paused;
    ctx.logger.warn(
      { event: snap.config.paused ? 'paused' : 'resumed' },
      snap.config.paused
        ? `cluster ${ctx.config.cluster.name} paused: no automatic failover, fencing or sync change until resume`
        : `cluster ${ctx.config.cluster.name} resumed: automatic actions are on again`,
    );
  }
  if (!snap.leader) return;
  const rec = snap.members.find((m) => m.name === snap.leader?.name);
  if (d.leader?.name !== snap.leader.name) d.streamedUnderLeader = [];
  d.leader = {
    name: snap.leader.name,
    walLsn: rec?.walLsn ?? d.leader?.walLsn ?? null,
    timeline: rec?.timeline ?? d.leader?.timeline ?? null,
  };
  const streamed = new Set(d.streamedUnderLeader);
  for (const m of snap.members) if (m.role === 'standby' && m.streaming) streamed.add(m.name);
  if (selfStreaming) streamed.add(ctx.config.node.name);
  d.streamedUnderLeader = [...streamed].sort();
}

/** One etcd call; an error is logged once per distinct message and returned as null. */
export async function dcsCall<T>(ctx: LoopContext, what: string, fn: () => Promise<T>): Promise<T | null> {
  try {
    const v = await fn();
    if (ctx.state.dcs.lastError !== null) {
      ctx.logger.info({ event: 'dcs_reachable' }, `etcd answers again (${what})`);
      ctx.state.dcs.lastError = null;
    }
    return v;
  } catch (err) {
    if (ctx.signal.aborted) return null;
    const text = `${what}: ${errorText(err)}`;
    if (ctx.state.dcs.lastError !== text)
      ctx.logger.warn({ event: 'dcs_error', err: errorText(err) }, `etcd call failed: ${text}`);
    ctx.state.dcs.lastError = text;
    return null;
  }
}

export function requireDcs(ctx: LoopContext): Dcs {
  if (!ctx.dcs) throw new Error('internal: etcd mode without a DCS client');
  return ctx.dcs;
}

/**
 * Where a standby streams from to follow `leader`: host and port of the leader's conninfo in
 * this keeper's cluster.members when listed (the operator's network address), else of the
 * conninfo the leader published. A Unix socket directory is the leader's own host's: useless.
 */
export function leaderAddress(
  c: KeeperConfig,
  leader: string,
  record: MemberRecord | undefined,
): { host: string; port: string } | { error: string } {
  const text = c.cluster.members.find((m) => m.name === leader)?.conninfo ?? record?.conninfo ?? null;
  if (!text) return { error: `no conninfo known for ${leader} (list it under cluster.members)` };
  const p = parseConninfo(text);
  const host = p.host ?? p.hostaddr;
  if (!host || host.startsWith('/'))
    return {
      error: `${leader}'s conninfo names no network host (${host ?? 'none'}): set its conninfo under cluster.members`,
    };
  return { host, port: p.port ?? '5432' };
}

/**
 * Makes the local standby stream from `leader`: rewrites host and port of primary_conninfo
 * (user, password and the rest stay), the slot to this member's name (the leader creates it),
 * then reloads: since PostgreSQL 13 the startup process restarts its walreceiver when
 * primary_conninfo or primary_slot_name change on reload (xlog.c / xlogrecovery.c,
 * StartupRereadConfig), and with recovery_target_timeline = 'latest' (the default since 12)
 * it follows the new primary's timeline. Returns true when it changed anything.
 */
export async function followLeader(
  ctx: LoopContext,
  leader: string,
  record: MemberRecord | undefined,
): Promise<boolean> {
  const { config: c, logger } = ctx;
  const where = leaderAddress(c, leader, record);
  if ('error' in where) {
    ctx.record('blocked', `cannot follow ${leader}: ${where.error}`, {}, `follow-error:${leader}`);
    return false;
  }
  const session = ctx.session;
  if (!session) return false;
  // Followed already by this keeper: two pg_settings reads saved in every loop.
  const target = `${leader}@${where.host}:${where.port}`;
  if (ctx.state.dcs.following === target) return false;
  const changed = await session.run('follow', async (q) => {
    const current = await readConfiguredSetting(q, 'primary_conninfo');
    const params = current ? parseConninfo(current) : {};
    const slot = await readConfiguredSetting(q, 'primary_slot_name');
    if ((params.host ?? params.hostaddr) === where.host && (params.port ?? '5432') === where.port)
      return false;
    const next = withConninfo(current || 'user=postgres', {
      host: where.host,
      hostaddr: undefined,
      port: where.port,
      application_name: c.node.name,
    });
    await q.query(`ALTER SYSTEM SET primary_conninfo = ${quoteLiteral(next)}`);
    if (slot !== '')
      await q.query(`ALTER SYSTEM SET primary_slot_name = ${quoteLiteral(slotName(c.node.name))}`);
    await q.query('SELECT pg_reload_conf()');
    logger.warn(
      { event: 'following', leader, primaryConninfo: redactConninfo(next) },
      `following ${leader} at ${where.host}:${where.port} (primary_conninfo rewritten, reloaded)`,
    );
    return true;
  });
  ctx.state.dcs.following = target;
  return changed;
}

/**
 * Host of a detached standby's primary_conninfo: a Unix socket directory that does not exist
 * (never a network address), so the walreceiver cannot connect and acknowledges nothing,
 * while user, password and every other parameter stay for the next followLeader (which
 * rewrites host and port only).
 */
export const DETACHED_HOST = '/nonexistent/pgfleet-detached';

/**
 * Makes the local standby stop streaming from `former` (the leader key is gone): host of
 * primary_conninfo set to DETACHED_HOST, reload; the walreceiver drops its connection.
 * Returns true when it changed anything.
 */
export async function detachFromLeader(ctx: LoopContext, former: string): Promise<boolean> {
  const session = ctx.session;
  if (!session) return false;
  // Detached already by this keeper: no pg_settings read in every loop while no one leads.
  if (ctx.state.dcs.following === DETACHED_HOST) return false;
  const changed = await session.run('detach', async (q) => {
    const current = await readConfiguredSetting(q, 'primary_conninfo');
    if (!current) return false;
    const p = parseConninfo(current);
    if ((p.host ?? p.hostaddr) === DETACHED_HOST) return false;
    const next = withConninfo(current, { host: DETACHED_HOST, hostaddr: undefined });
    await q.query(`ALTER SYSTEM SET primary_conninfo = ${quoteLiteral(next)}`);
    await q.query('SELECT pg_reload_conf()');
    return true;
  });
  ctx.state.dcs.following = DETACHED_HOST;
  if (changed)
    ctx.logger.warn(
      { event: 'detached', leader: former },
      `stopped streaming from ${former}: its leader key is gone (this standby acknowledges none of its WAL until it follows the next leader)`,
    );
  return changed;
}

/**
 * On the primary: a physical slot for every other member, so a standby that follows after a
 * failover finds the slot it streams with (and the primary keeps the WAL it still needs).
 * Created without reserving WAL: it starts holding WAL once its standby connects.
 */
export async function ensureSlots(ctx: LoopContext, snap: ClusterSnapshot): Promise<void> {
  const { config: c } = ctx;
  const session = ctx.session;
  if (!session) return;
  const wanted = new Set(
    [...snap.members.map((m) => m.name), ...c.cluster.members.map((m) => m.name)]
      .filter((n) => n !== c.node.name)
      .map(slotName),
  );
  if (wanted.size === 0) return;
  await session.run('slots', async (q) => {
    const { rows } = await q.query("SELECT slot_name FROM pg_replication_slots WHERE slot_type = 'physical'");
    const have = new Set(rows.map((r) => String(r.slot_name)));
    for (const slot of wanted) {
      if (have.has(slot)) continue;
      await q.query('SELECT pg_create_physical_replication_slot($1)', [slot]);
      ctx.logger.info({ event: 'slot_created', slot }, `created physical replication slot ${slot}`);
    }
  });
}

/** Is `rec` a member's server that takes writes (an unfenced primary)? */
export function writingPrimary(rec: Pick<MemberRecord, 'role' | 'fenced'>): boolean {
  return rec.role === 'primary' && !rec.fenced;
}
