import type { Lsn } from '@pgfleet/wal';
import type { DeadLetterRow } from './dead-letter-recorder.js';

/** Why the applier stopped: the edge restarts the stream from origin progress accordingly. */
export type ApplierFailure =
  /** The target refused this transaction (a constraint, a type, policy `error`): replay it change by change. */
  | { kind: 'replay'; commitLsn: Lsn; error: Error }
  /** Skip this transaction, recording every change of it (the stream restarts to read it whole). */
  | { kind: 'dead_letter'; commitLsn: Lsn; row: DeadLetterRow; error: Error }
  /** Schema mismatch or a dead letter under pause_edge: wait, then try again. */
  | { kind: 'pause'; error: Error }
  /** The session broke (connection lost, a transient error): reconnect with backoff. */
  | { kind: 'retry'; error: Error };
