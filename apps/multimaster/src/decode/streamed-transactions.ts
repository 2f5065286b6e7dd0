import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { DecodeError } from './pgoutput-parser.js';
import { SpoolFile } from './spool-file.js';

const STREAM_START = 0x53; // S
const STREAM_STOP = 0x45; // E
const STREAM_COMMIT = 0x63; // c
const STREAM_ABORT = 0x41; // A
const ORIGIN = 0x4f; // O
const RELATION = 0x52; // R
const TYPE = 0x59; // Y
/** Changes (and transactional messages): they carry the (sub)transaction's xid after their tag inside a stream block. */
const CHANGES = new Set([0x49, 0x55, 0x44, 0x54, 0x4d]); // I U D T M

const SPOOL_DIR_PREFIX = 'pgfleet-spool-';

export interface StreamedTransactionsOptions {
  /** Directory that holds the spool files (one subdirectory per session). */
  dir: string;
  /** Hands one protocol-1 message on; the buffer is valid only during the call. */
  deliver(msg: Buffer): void;
  /** Whether what `deliver` feeds has asked the stream to pause (a replay waits while it has). */
  downstreamHeld(): boolean;
  /** Pauses (true) or resumes (false) the replication stream while a transaction is replayed. */
  hold(on: boolean): void;
  /**
   * A stream it cannot follow (DecodeError) or a spool it cannot write or read: the session
   * must end and start over from progress. Nothing is handed on after it.
   */
  fail(err: Error): void;
}

interface Spooled {
  xid: number;
  file: SpoolFile;
  /** Where each subtransaction's first change starts, in order of appearance. */
  subxacts: Map<number, number>;
  /**
   * Relation and type messages with where they start. A rolled-back subtransaction does not
   * take them along: the source counts a relation's schema as sent for the whole top-level
   * transaction and does not send it again after the rollback.
   */
  schema: Array<{ at: number; msg: Buffer }>;
  /** The transaction carries an origin: only Begin, Origin and Commit are handed on. */
  echo: boolean;
}

interface Replay {
  next: () => Buffer | null;
  /** The committed transaction's spool, discarded once handed on. */
  file: SpoolFile;
  commit: Buffer;
}

/**
 * Turns transactions the source streams while they are still in progress (pgoutput
 * protocol 2, `streaming 'on'`) back into whole transactions, so that everything after it
 * sees what protocol 1 sends: Begin, the changes, Commit, at the commit's place in the
 * stream. The source then decodes a large transaction without spilling it to its own disk
 * (the spill was 60 % of its decoding time, see the multimaster README).
 *
 * Each streamed transaction's changes go to a spool (memory, then a file); a subtransaction
 * rolled back cuts its spool back to that subtransaction's first change, as PostgreSQL's own
 * apply worker does (a subtransaction's changes and its children's follow its first change
 * until its abort); an aborted transaction is dropped; at Stream Commit the spool is read
 * back and handed on. While it is, the replication stream is paused and what still
 * arrives waits here, copied, behind it. Transactions that carry an origin (echoes, which
 * the applier drops whole after noting their origin) keep only their Origin and schema
 * messages.
 *
 * Off by default (apply.streaming): the apply starts only at the commit, so the whole is
 * slower than protocol 1 here, which overlaps the source's read-back with the apply (figures
 * in the multimaster README).
 *
 * Nothing here is durable or needs to be: a transaction still in progress is not part of
 * any acknowledged position, so after a restart the source streams it again from its start.
 */
export class StreamedTransactions {
  private readonly open = new Map<number, Spooled>();
  /** Top-level xid of the stream block being received (between Stream Start and Stop). */
  private current: Spooled | null = null;
  private replay: Replay | null = null;
  private readonly queue: Buffer[] = [];
  private pumping = false;
  private scheduled = false;
  private dir: string | null = null;
  private closed = false;

  constructor(private readonly o: StreamedTransactionsOptions) {}

  /** A message from the replication stream; `msg` is valid only during the call. */
  receive(msg: Buffer): void {
    if (this.closed) return;
    if (this.replay !== null || this.queue.length > 0) {
      this.queue.push(Buffer.from(msg));
      return;
    }
    this.guarded(() => this.handle(msg));
  }

  private guarded(step: () => void): void {
    try {
      step();
    } catch (err) {
      this.close();
      this.o.fail(err as Error);
    }
  }

  /** Whether a committed transaction is being handed on or messages wait behind it. */
  replaying(): boolean {
    return this.replay !== null || this.queue.length > 0;
  }

  /** Transactions streamed and neither committed nor aborted yet (for status and tests). */
  inProgress(): number {
    return this.open.size;
  }

  /** Bytes held for them and for the one being handed on, in memory or in files. */
  spooledBytes(): number {
    let n = this.replay?.file.size ?? 0;
    for (const s of this.open.values()) n += s.file.size;
    return n;
  }

  /**
   * What `deliver` feeds stopped holding the stream: carry on with a waiting replay, once
   * the caller's own handling has unwound (it may be in the middle of its resume).
   */
  resume(): void {
    if (this.replay === null || this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      if (!this.closed) this.guarded(() => this.pump());
    });
  }

  /** Drops every spool and removes the session's spool directory. */
  close(): void {
    this.closed = true;
    for (const s of this.open.values()) s.file.discard();
    this.open.clear();
    this.replay?.file.discard();
    this.replay = null;
    this.queue.length = 0;
    if (this.dir !== null) rmSync(this.dir, { recursive: true, force: true });
    this.dir = null;
  }

  private handle(msg: Buffer): void {
    const tag = msg[0] as number;
    if (tag === STREAM_START) {
      const xid = msg.readUInt32BE(1);
      const first = msg[5] === 1;
      let s = this.open.get(xid);
      if (first && s) {
        s.file.discard();
        s = undefined;
      }
      if (!s) {
        if (!first)
          throw new DecodeError(
            `stream of transaction ${xid} continued, but its first segment never arrived`,
            {
              xid,
            },
          );
        s = {
          xid,
          file: new SpoolFile(join(this.spoolDir(), String(xid))),
          subxacts: new Map(),
          schema: [],
          echo: false,
        };
        this.open.set(xid, s);
      }
      this.current = s;
      return;
    }
    if (tag === STREAM_STOP) {
      this.current = null;
      return;
    }
    if (tag === STREAM_COMMIT) {
      this.commit(msg);
      return;
    }
    if (tag === STREAM_ABORT) {
      this.abort(msg.readUInt32BE(1), msg.readUInt32BE(5));
      return;
    }
    const s = this.current;
    if (s === null) {
      this.o.deliver(msg);
      return;
    }
    if (tag === ORIGIN) {
      s.echo = true;
      s.file.append(msg);
      return;
    }
    if (tag === RELATION || tag === TYPE) {
      // Protocol 1's layout: the tag, then everything after the xid.
      const v1 = Buffer.concat([msg.subarray(0, 1), msg.subarray(5)]);
      s.schema.push({ at: s.file.size, msg: v1 });
      s.file.append(v1);
      return;
    }
    if (!CHANGES.has(tag))
      throw new DecodeError(
        `unexpected message 0x${tag.toString(16)} inside the stream of transaction ${s.xid}`,
        {
          xid: s.xid,
        },
      );
    if (s.echo) return;
    const xid = msg.readUInt32BE(1);
    if (xid !== s.xid && !s.subxacts.has(xid)) s.subxacts.set(xid, s.file.size);
    s.file.append(msg.subarray(0, 1), msg.subarray(5));
  }

  private abort(xid: number, subxid: number): void {
    const s = this.open.get(xid);
    if (!s) return; // Nothing of it was streamed here (or it was already dropped).
    if (subxid === xid) {
      s.file.discard();
      this.open.delete(xid);
      if (this.current === s) this.current = null;
      return;
    }
    const at = s.subxacts.get(subxid);
    if (at === undefined) return; // The subtransaction changed nothing that was streamed.
    s.file.truncate(at);
    for (const [sub, first] of s.subxacts) if (first >= at) s.subxacts.delete(sub);
    // The schema messages cut off go back at the end, in their order.
    const kept = s.schema.filter((m) => m.at < at);
    for (const m of s.schema) {
      if (m.at < at) continue;
      kept.push({ at: s.file.size, msg: m.msg });
      s.file.append(m.msg);
    }
    s.schema = kept;
  }

  private commit(msg: Buffer): void {
    // 'c', xid, flags, commit LSN, end LSN, commit timestamp.
    const xid = msg.readUInt32BE(1);
    const s = this.open.get(xid);
    if (!s) throw new DecodeError(`stream commit of transaction ${xid}, which was never streamed`, { xid });
    this.open.delete(xid);
    if (this.current === s) this.current = null;
    const commitLsn = msg.subarray(6, 14);
    const commitTs = msg.subarray(22, 30);
    const begin = Buffer.allocUnsafe(21);
    begin[0] = 0x42; // B: final LSN, commit timestamp, xid
    commitLsn.copy(begin, 1);
    commitTs.copy(begin, 9);
    begin.writeUInt32BE(xid, 17);
    const commit = Buffer.allocUnsafe(26);
    commit[0] = 0x43; // C: flags, commit LSN, end LSN, commit timestamp
    msg.copy(commit, 1, 5, 30);
    this.replay = { next: s.file.reader(), file: s.file, commit };
    this.o.hold(true);
    this.o.deliver(begin);
    this.pump();
  }

  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.replay !== null && !this.o.downstreamHeld()) {
        const r = this.replay;
        const m = r.next();
        if (m !== null) {
          this.o.deliver(m);
          continue;
        }
        r.file.discard();
        this.replay = null;
        this.o.deliver(r.commit);
        // What arrived meanwhile, in order, until it starts another replay.
        while (this.replay === null && this.queue.length > 0 && !this.closed)
          this.handle(this.queue.shift() as Buffer);
      }
    } finally {
      this.pumping = false;
    }
    if (this.replay === null && this.queue.length === 0 && !this.closed) this.o.hold(false);
  }

  private spoolDir(): string {
    if (this.dir === null) {
      removeAbandonedSpools(this.o.dir);
      this.dir = mkdtempSync(join(this.o.dir, `${SPOOL_DIR_PREFIX}${process.pid}-`));
    }
    return this.dir;
  }
}

/** Removes spool directories left by replicator processes that no longer run (killed). */
function removeAbandonedSpools(dir: string): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return; // mkdtemp reports a missing directory with its name.
  }
  for (const name of names) {
    if (!name.startsWith(SPOOL_DIR_PREFIX)) continue;
    const pid = Number(name.slice(SPOOL_DIR_PREFIX.length).split('-')[0]);
    if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid || alive(pid)) continue;
    rmSync(join(dir, name), { recursive: true, force: true });
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
