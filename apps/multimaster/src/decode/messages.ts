import type { Lsn } from '@pgfleet/wal';

/** Marker for an unchanged TOASTed column ('u'): the value was not sent and must not be written. */
export const UNCHANGED_TOAST: unique symbol = Symbol('unchanged-toast');
export type UnchangedToast = typeof UNCHANGED_TOAST;

/**
 * A row image in relation column order. Values stay exactly the text the server sent
 * (its type output function), never parsed into JS numbers or Dates.
 */
export type Tuple = Array<string | null | UnchangedToast>;

export interface RelationColumn {
  name: string;
  typeOid: number;
  typeMod: number;
  /** Part of the replica identity (primary key or REPLICA IDENTITY index/full). */
  isKey: boolean;
}

export interface BeginMessage {
  tag: 'begin';
  /** LSN of the commit record (the transaction's final LSN). */
  finalLsn: Lsn;
  /** Commit timestamp, µs since 2000-01-01. */
  commitTs: bigint;
  xid: number;
}
export interface CommitMessage {
  tag: 'commit';
  commitLsn: Lsn;
  /** End of the commit record: the position to resume after and to report as flushed. */
  endLsn: Lsn;
  commitTs: bigint;
}
export interface OriginMessage {
  tag: 'origin';
  originLsn: Lsn;
  name: string;
}
export interface RelationMessage {
  tag: 'relation';
  relationId: number;
  schema: string;
  name: string;
  /** 'd' default, 'n' nothing, 'f' full, 'i' index. */
  replicaIdentity: 'd' | 'n' | 'f' | 'i';
  columns: RelationColumn[];
}
export interface TypeMessage {
  tag: 'type';
  typeOid: number;
  schema: string;
  name: string;
}
export interface InsertMessage {
  tag: 'insert';
  relationId: number;
  newTuple: Tuple;
}
export interface UpdateMessage {
  tag: 'update';
  relationId: number;
  /** Old key columns ('K'): sent when the replica identity key changed. Non-key positions are null. */
  key: Tuple | null;
  /** Whole old row ('O'): sent with REPLICA IDENTITY FULL. */
  old: Tuple | null;
  newTuple: Tuple;
}
export interface DeleteMessage {
  tag: 'delete';
  relationId: number;
  key: Tuple | null;
  old: Tuple | null;
}
export interface TruncateMessage {
  tag: 'truncate';
  relationIds: number[];
  cascade: boolean;
  restartIdentity: boolean;
}
export interface LogicalMessage {
  tag: 'message';
  transactional: boolean;
  lsn: Lsn;
  prefix: string;
  content: Buffer;
}

export type PgoutputMessage =
  | BeginMessage
  | CommitMessage
  | OriginMessage
  | RelationMessage
  | TypeMessage
  | InsertMessage
  | UpdateMessage
  | DeleteMessage
  | TruncateMessage
  | LogicalMessage;
