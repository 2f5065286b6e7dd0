import type { DeleteMessage, InsertMessage, Tuple, UpdateMessage } from '../decode/messages.js';
import { UNCHANGED_TOAST } from '../decode/messages.js';
import type { ApplyTable } from './statements.js';

/** A value as a query parameter: unchanged TOAST is never written, so it never becomes one. */
export function textOf(v: string | null | typeof UNCHANGED_TOAST | undefined): string | null {
  return v === UNCHANGED_TOAST || v === undefined ? null : v;
}

/** Column name → text (null for SQL NULL); unchanged TOAST columns are left out. */
export function tupleObject(t: ApplyTable, tuple: Tuple | null): Record<string, string | null> | null {
  if (!tuple) return null;
  const out: Record<string, string | null> = {};
  tuple.forEach((v, i) => {
    if (v !== UNCHANGED_TOAST) out[t.columns[i]?.name ?? `#${i}`] = v;
  });
  return out;
}

/** The key (old key or old row) of an update or delete as the source sent it. */
export function oldTuple(msg: UpdateMessage | DeleteMessage): Tuple | null {
  return msg.key ?? msg.old;
}

/**
 * The old image as JSON: the whole old row ('O', REPLICA IDENTITY FULL), or only the key
 * columns of an old key ('K'), whose other positions the source sends as NULL placeholders.
 */
export function oldObject(
  t: ApplyTable,
  msg: UpdateMessage | DeleteMessage,
): Record<string, string | null> | null {
  if (msg.key) {
    const all = tupleObject(t, msg.key) ?? {};
    return Object.fromEntries(
      t.keyIndexes.map((i) => [t.columns[i]?.name as string, all[t.columns[i]?.name as string] ?? null]),
    );
  }
  return tupleObject(t, msg.old);
}

/** A change as JSON for conflict and dead-letter records: `{ new }`, `{ key, new }` or `{ key }`. */
export function changeImage(
  t: ApplyTable | undefined,
  msg: InsertMessage | UpdateMessage | DeleteMessage,
): Record<string, unknown> | null {
  if (!t) return null;
  if (msg.tag === 'insert') return { new: tupleObject(t, msg.newTuple) };
  if (msg.tag === 'update') return { key: oldObject(t, msg), new: tupleObject(t, msg.newTuple) };
  return { key: oldObject(t, msg) };
}

/**
 * Whether an update changes its row's key. The old key comes from the old tuple ('K' or
 * 'O'); without one the key did not change. Compared as text, which both sides render
 * under the same pinned settings.
 */
export function keyChanged(t: ApplyTable, msg: UpdateMessage): boolean {
  const old = oldTuple(msg);
  if (!old) return false;
  return t.keyIndexes.some((i) => {
    const v = msg.newTuple[i];
    return v !== UNCHANGED_TOAST && textOf(old[i]) !== textOf(v);
  });
}
