import { PgfleetError } from '@pgfleet/connection';
import { isValidLsn, type Lsn, parseLsn } from './lsn.js';

/** A timeline history file could not be parsed; `details.line` is the 1-based line number. */
export class TimelineHistoryError extends PgfleetError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super('TIMELINE_HISTORY_INVALID', message, details);
  }
}

/** One line of a history file: `timeline` ended at `switchpoint`, where its child began. */
export interface TimelineHistoryEntry {
  timeline: number;
  switchpoint: Lsn;
  reason: string;
}

/**
 * The ancestry of `timeline`: every earlier timeline on its branch with the LSN where it ended,
 * oldest first. `timeline` itself has no end (it is the one the file was written for).
 */
export interface TimelineHistory {
  timeline: number;
  entries: readonly TimelineHistoryEntry[];
}

const MAX_TIMELINE = 0xffffffff;
const ENTRY = /^(\d+)\s+(\S+)(?:\s+(.*))?$/;

/**
 * Parses the contents of a `0000000N.history` file, following readTimeLineHistory
 * (src/backend/access/transam/timeline.c): one `parentTLI<TAB>switchpoint<TAB>reason` line per
 * ancestor, blank lines and `#` comments ignored, timeline IDs strictly increasing.
 *
 * `timeline` is the file's own timeline (the N in its name). When omitted it is taken as the last
 * parent + 1, which is right unless the history skipped a sibling timeline; pass it when you know it.
 */
export function parseTimelineHistory(text: string, timeline?: number): TimelineHistory {
  const entries: TimelineHistoryEntry[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const line = (lines[i] ?? '').trim();
    if (line === '' || line.startsWith('#')) continue;
    const match = ENTRY.exec(line);
    if (!match) {
      throw new TimelineHistoryError(
        `timeline history line ${lineNo}: expected "<timeline> <switchpoint LSN> <reason>", got ${JSON.stringify(line)}`,
        { line: lineNo, text: line },
      );
    }
    const tli = parseTli(match[1]!, lineNo);
    const lsnText = match[2]!;
    if (!isValidLsn(lsnText)) {
      throw new TimelineHistoryError(
        `timeline history line ${lineNo}: invalid switchpoint ${JSON.stringify(lsnText)} (expected an LSN like 0/3000060)`,
        { line: lineNo, text: line },
      );
    }
    const switchpoint = parseLsn(lsnText);
    const previous = entries.at(-1);
    if (previous && tli <= previous.timeline) {
      throw new TimelineHistoryError(
        `timeline history line ${lineNo}: timeline ${tli} does not follow ${previous.timeline}; timeline IDs must increase`,
        { line: lineNo, text: line },
      );
    }
    if (previous && switchpoint < previous.switchpoint) {
      throw new TimelineHistoryError(
        `timeline history line ${lineNo}: switchpoint ${lsnText} is before the previous switchpoint; a child timeline cannot begin before its parent`,
        { line: lineNo, text: line },
      );
    }
    entries.push({ timeline: tli, switchpoint, reason: (match[3] ?? '').trim() });
  }

  const last = entries.at(-1);
  const own = timeline ?? (last ? last.timeline + 1 : 1);
  if (!Number.isInteger(own) || own < 1 || own > MAX_TIMELINE) {
    throw new TimelineHistoryError(`invalid timeline ${own}: must be an integer in 1..4294967295`, {
      timeline: own,
    });
  }
  if (last && own <= last.timeline) {
    throw new TimelineHistoryError(
      `timeline history for timeline ${own} lists ancestor ${last.timeline}; ancestors must be lower than the file's timeline`,
      { timeline: own },
    );
  }
  return { timeline: own, entries };
}

/**
 * The timeline that wrote `lsn` on this branch (tliOfPointInHistory): a switchpoint belongs to the
 * child, so the byte at the switchpoint itself is on the next timeline.
 */
export function timelineForLsn(history: TimelineHistory, lsn: Lsn): number {
  for (const entry of history.entries) {
    if (lsn < entry.switchpoint) return entry.timeline;
  }
  return history.timeline;
}

/**
 * LSN at which `timeline` ended on this branch (tliSwitchPoint), or `null` for the history's own
 * timeline (still open). Throws if `timeline` is not on the branch.
 */
export function timelineSwitchpoint(history: TimelineHistory, timeline: number): Lsn | null {
  if (timeline === history.timeline) return null;
  const entry = history.entries.find((e) => e.timeline === timeline);
  if (!entry) {
    throw new TimelineHistoryError(
      `timeline ${timeline} is not an ancestor of timeline ${history.timeline} in this history`,
      { timeline, historyTimeline: history.timeline },
    );
  }
  return entry.switchpoint;
}

/** File name of a timeline's history file in pg_wal: `%08X.history`. */
export function timelineHistoryFileName(timeline: number): string {
  if (!Number.isInteger(timeline) || timeline < 1 || timeline > MAX_TIMELINE) {
    throw new TimelineHistoryError(`invalid timeline ${timeline}: must be an integer in 1..4294967295`, {
      timeline,
    });
  }
  return `${timeline.toString(16).toUpperCase().padStart(8, '0')}.history`;
}

function parseTli(text: string, lineNo: number): number {
  const tli = Number(text);
  if (!Number.isSafeInteger(tli) || tli < 1 || tli > MAX_TIMELINE) {
    throw new TimelineHistoryError(
      `timeline history line ${lineNo}: timeline ${text} is out of range 1..4294967295`,
      { line: lineNo },
    );
  }
  return tli;
}
