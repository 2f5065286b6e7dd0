/**
 * Pure: is a primary + standby node ready to fail over without the mesh losing or
 * duplicating a change, and what must change on its primary. Facts in, status and actions
 * out; node-facts.ts gathers the facts, node-supervisor.ts carries the actions out.
 */

/** What the node's current primary shows. */
export interface PrimaryFacts {
  server: string;
  /** server_version_num / 10000. */
  major: number;
  /** Physical slots of the node's other servers that exist on the primary. */
  standbySlots: Array<{ slot: string; active: boolean; lagBytes: number | null }>;
  /**
   * Every outgoing edge's slot: does it exist, is it a failover slot (17+), is the edge set
   * up (publication), and its row in pgfleet.slot_resync: 'live' once a supervisor saw it
   * exist, 'pending' while it is re-created, 'done' after (null: never seen). The table is
   * replicated to the standby with everything else, so after a promotion it tells a slot
   * lost in the failover (re-create it) from one never created (init has not run yet).
   */
  outSlots: Array<{
    slot: string;
    exists: boolean;
    failover: boolean | null;
    publication: boolean;
    state: string | null;
  }>;
  /** synchronized_standby_slots (17+), null before 17. */
  synchronizedStandbySlots: string | null;
}

/** What one of the node's other servers shows. */
export interface StandbyFacts {
  server: string;
  slot: string;
  /** Null when it did not answer. */
  error: string | null;
  inRecovery: boolean | null;
  /** 17+: settings slot synchronization needs. Null before 17 or when unreadable. */
  settings: {
    syncReplicationSlots: boolean;
    hotStandbyFeedback: boolean;
    primarySlotName: string;
    primaryConninfoHasDbname: boolean;
  } | null;
  /** 17+: the logical slots it holds, as the slot sync worker left them. */
  syncedSlots: Array<{ slot: string; synced: boolean; temporary: boolean }>;
}

export interface StandbyStatus {
  server: string;
  streaming: boolean;
  lagBytes: number | null;
  ready: boolean;
  reasons: string[];
}

export interface NodeHaStatus {
  node: string;
  primary: string | null;
  /** How outgoing edges survive a failover: failover slots (17+) or the re-sync of the window. */
  procedure: 'failover-slots' | 'resync' | null;
  /** A failover now would lose and duplicate nothing (under the procedure's guarantee). */
  ready: boolean;
  reasons: string[];
  standbys: StandbyStatus[];
  /** Outgoing slots missing on the primary or being re-created (re-sync pending). */
  resyncPending: string[];
  checkedAt: string | null;
}

export interface HaPlan {
  status: NodeHaStatus;
  /** 17+: new value for synchronized_standby_slots on the primary, or null to leave it. */
  setSynchronizedStandbySlots: string | null;
  /** 17+: emit a running-xacts record so temporary synced slots can become sync-ready sooner. */
  logStandbySnapshot: boolean;
  /** Outgoing slots to re-create with a re-sync of their peer. */
  resync: string[];
  /** Existing outgoing slots to record as 'live' (so a failover that loses them is noticed). */
  markLive: string[];
}

const list = (s: string | null) =>
  (s ?? '')
    .split(',')
    .map((x) => x.trim().replace(/^"|"$/g, ''))
    .filter(Boolean)
    .sort();

/** The plan for a node; `primary` null when no server accepts writes (reason in `primaryError`). */
export function planNodeHa(
  node: string,
  primary: PrimaryFacts | null,
  primaryError: string | null,
  standbys: StandbyFacts[],
  now: Date,
): HaPlan {
  const status: NodeHaStatus = {
    node,
    primary: primary?.server ?? null,
    procedure: primary ? (primary.major >= 17 ? 'failover-slots' : 'resync') : null,
    ready: false,
    reasons: [],
    standbys: [],
    resyncPending: [],
    checkedAt: now.toISOString(),
  };
  const plan: HaPlan = {
    status,
    setSynchronizedStandbySlots: null,
    logStandbySnapshot: false,
    resync: [],
    markLive: [],
  };
  if (!primary) {
    status.reasons.push(primaryError ?? 'no primary');
    return plan;
  }
  const failoverSlots = primary.major >= 17;
  for (const o of primary.outSlots) {
    if (!o.publication) continue;
    const lost = !o.exists && o.state !== null;
    if (lost || o.state === 'pending') {
      status.resyncPending.push(o.slot);
      plan.resync.push(o.slot);
    } else if (o.exists && o.state === null) plan.markLive.push(o.slot);
    else if (!o.exists) status.reasons.push(`slot ${o.slot} does not exist (run pgfleet-mm init)`);
  }
  if (status.resyncPending.length > 0)
    status.reasons.push(
      `outgoing slots being re-created after a failover: ${status.resyncPending.join(', ')}`,
    );
  if (failoverSlots) {
    const want = primary.standbySlots.map((s) => s.slot).sort();
    if (list(primary.synchronizedStandbySlots).join(',') !== want.join(','))
      plan.setSynchronizedStandbySlots = want.join(',');
  }
  for (const sf of standbys) {
    const phys = primary.standbySlots.find((s) => s.slot === sf.slot);
    const st: StandbyStatus = {
      server: sf.server,
      streaming: phys?.active === true,
      lagBytes: phys?.lagBytes ?? null,
      ready: false,
      reasons: [],
    };
    if (sf.error !== null) st.reasons.push(`unreachable: ${sf.error}`);
    else if (sf.inRecovery === false) st.reasons.push('is not a standby (a second primary?)');
    if (!phys) st.reasons.push(`physical slot ${sf.slot} does not exist on ${primary.server}`);
    else if (!phys.active) st.reasons.push(`not streaming through slot ${sf.slot}`);
    if (failoverSlots && sf.error === null && sf.inRecovery) {
      const s = sf.settings;
      if (s) {
        if (!s.syncReplicationSlots) st.reasons.push('sync_replication_slots is off');
        if (!s.hotStandbyFeedback) st.reasons.push('hot_standby_feedback is off');
        if (s.primarySlotName !== sf.slot)
          st.reasons.push(`primary_slot_name is '${s.primarySlotName}', not '${sf.slot}'`);
        if (!s.primaryConninfoHasDbname) st.reasons.push('primary_conninfo names no dbname');
      }
      for (const o of primary.outSlots) {
        if (!o.publication || !o.exists) continue;
        if (o.failover === false) {
          st.reasons.push(`slot ${o.slot} on ${primary.server} is not a failover slot`);
          continue;
        }
        const synced = sf.syncedSlots.find((x) => x.slot === o.slot);
        if (!synced?.synced) st.reasons.push(`slot ${o.slot} is not synchronized yet`);
        else if (synced.temporary) {
          // A synced slot stays temporary (and is dropped at promotion) until the primary's
          // slot has moved past what the standby can reserve (slotsync.c).
          st.reasons.push(`slot ${o.slot} is synchronized but not sync-ready yet (temporary)`);
          plan.logStandbySnapshot = true;
        }
      }
      if (phys && !list(primary.synchronizedStandbySlots).includes(sf.slot))
        st.reasons.push(`synchronized_standby_slots on ${primary.server} does not list ${sf.slot}`);
    }
    st.ready = st.reasons.length === 0;
    status.standbys.push(st);
  }
  if (standbys.length === 0) status.reasons.push('no standby configured');
  else if (!status.standbys.some((s) => s.ready)) status.reasons.push('no standby is ready to take over');
  status.ready = status.reasons.length === 0;
  return plan;
}
