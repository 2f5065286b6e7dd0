import { PgfleetError } from '@pgfleet/connection';
import { type Lsn, toLsn } from './lsn.js';

/** PostgreSQL's default `wal_segment_size` (initdb --wal-segsize=16). */
export const DEFAULT_WAL_SEGMENT_SIZE = 16 * 1024 * 1024;

const MIN_SEGMENT_SIZE = 1024 * 1024;
const MAX_SEGMENT_SIZE = 1024 * 1024 * 1024;
const MAX_TIMELINE = 0xffffffff;

/** A WAL segment size, timeline or segment file name was invalid. */
export class WalSegmentError extends PgfleetError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super('WAL_SEGMENT_INVALID', message, details);
  }
}

/** A WAL segment file, identified by timeline and segment number. */
export interface WalSegment {
  timeline: number;
  /** Segment number counted from LSN 0/0 (`XLogSegNo`). */
  segmentNumber: bigint;
  /** LSN of the first byte in the segment. */
  startLsn: Lsn;
}

/**
 * True for the sizes initdb accepts (IsValidWalSegSize in src/include/access/xlog_internal.h):
 * a power of two from 1 MiB to 1 GiB.
 */
export function isValidWalSegmentSize(bytes: number): boolean {
  return (
    Number.isInteger(bytes) &&
    bytes >= MIN_SEGMENT_SIZE &&
    bytes <= MAX_SEGMENT_SIZE &&
    (bytes & (bytes - 1)) === 0
  );
}

/** Throws {@link WalSegmentError} unless {@link isValidWalSegmentSize}. */
export function assertWalSegmentSize(bytes: number): void {
  if (!isValidWalSegmentSize(bytes)) {
    throw new WalSegmentError(
      `invalid WAL segment size ${bytes}: must be a power of two between 1 MiB and 1 GiB`,
      { segmentSizeBytes: bytes },
    );
  }
}

/**
 * Name of the WAL file holding the byte at `lsn` on `timeline`, as XLogFileName builds it:
 * `%08X%08X%08X` of timeline, segment number / segments-per-4GiB, segment number % segments-per-4GiB.
 *
 * This is the segment that *contains* `lsn` (XLByteToSeg), as `pg_walfile_name()` and
 * `pg_walfile_name_offset()` report it from PostgreSQL 17 on. Older servers differ exactly on
 * segment boundaries: their xlogfuncs.c used XLByteToPrevSeg, so for an LSN at the very start of
 * a segment they name the previous one.
 */
export function walSegmentName(
  lsn: Lsn,
  timeline: number,
  segmentSizeBytes: number = DEFAULT_WAL_SEGMENT_SIZE,
): string {
  assertTimeline(timeline);
  assertWalSegmentSize(segmentSizeBytes);
  const size = BigInt(segmentSizeBytes);
  const segmentNumber = lsn / size;
  const perId = 0x100000000n / size;
  return hex8(BigInt(timeline)) + hex8(segmentNumber / perId) + hex8(segmentNumber % perId);
}

const SEGMENT_NAME = /^[0-9A-F]{24}$/;

/**
 * Parses a 24-character WAL segment file name (uppercase hex, as PostgreSQL writes them; see
 * IsXLogFileName) into timeline, segment number and start LSN. Throws {@link WalSegmentError}.
 */
export function parseWalSegmentName(
  name: string,
  segmentSizeBytes: number = DEFAULT_WAL_SEGMENT_SIZE,
): WalSegment {
  assertWalSegmentSize(segmentSizeBytes);
  if (typeof name !== 'string' || !SEGMENT_NAME.test(name)) {
    throw new WalSegmentError(
      `invalid WAL segment file name ${JSON.stringify(name)}: expected 24 uppercase hex digits like 000000010000000000000001`,
      { input: name },
    );
  }
  const timeline = Number.parseInt(name.slice(0, 8), 16);
  const log = BigInt(`0x${name.slice(8, 16)}`);
  const seg = BigInt(`0x${name.slice(16, 24)}`);
  const size = BigInt(segmentSizeBytes);
  const perId = 0x100000000n / size;
  if (timeline === 0) {
    throw new WalSegmentError(
      `invalid WAL segment file name ${JSON.stringify(name)}: timeline 0 does not exist`,
      {
        input: name,
      },
    );
  }
  if (seg >= perId) {
    throw new WalSegmentError(
      `invalid WAL segment file name ${JSON.stringify(name)}: segment part ${name.slice(16)} must be below ${hex8(perId)} for ${segmentSizeBytes}-byte segments`,
      { input: name, segmentSizeBytes },
    );
  }
  const segmentNumber = log * perId + seg;
  return { timeline, segmentNumber, startLsn: toLsn(segmentNumber * size) };
}

/** Byte offset of `lsn` inside its segment (the `file_offset` of `pg_walfile_name_offset`). */
export function walSegmentOffset(lsn: Lsn, segmentSizeBytes: number = DEFAULT_WAL_SEGMENT_SIZE): number {
  assertWalSegmentSize(segmentSizeBytes);
  return Number(lsn % BigInt(segmentSizeBytes));
}

function assertTimeline(timeline: number): void {
  if (!Number.isInteger(timeline) || timeline < 1 || timeline > MAX_TIMELINE) {
    throw new WalSegmentError(`invalid timeline ${timeline}: must be an integer in 1..4294967295`, {
      timeline,
    });
  }
}

function hex8(n: bigint): string {
  return n.toString(16).toUpperCase().padStart(8, '0');
}
