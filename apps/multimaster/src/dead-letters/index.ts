export { cmdDeadLetters } from './cli-command.js';
export {
  type DeadLetterEntry,
  type ListDeadLettersOptions,
  listDeadLetters,
  type NodeDeadLetters,
} from './list.js';
export { ReplayError, type ReplayOptions, type ReplayReport, replayDeadLetter } from './replay.js';
