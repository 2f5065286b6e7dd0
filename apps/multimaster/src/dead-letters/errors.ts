import { PgfleetError } from '@pgfleet/connection';

/**
 * `DEAD_LETTER_REPLAY_FAILED`: a dead letter cannot be replayed. It does not exist, is
 * already resolved, still pauses its edge, names a table or column the node no longer
 * has, or a change of it was refused again (then nothing of it was applied); `details`
 * names the node, the id and, for a refused change, its sequence number and SQLSTATE.
 */
export class ReplayError extends PgfleetError {
  constructor(message: string, details: Record<string, unknown> = {}, options?: ErrorOptions) {
    super('DEAD_LETTER_REPLAY_FAILED', message, details, options);
  }
}
