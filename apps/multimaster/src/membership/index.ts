export {
  type AddNodeOptions,
  type AddNodePhase,
  type AddNodeProgress,
  type AddNodeReport,
  addNode,
} from './add-node.js';
export type { CopyProgress } from './copy.js';
export { MembershipError, type MembershipErrorCode } from './errors.js';
export {
  type NodeRemovalResult,
  type RemoveNodeOptions,
  type RemoveNodeReport,
  removeNode,
} from './remove-node.js';
export { type SequenceOffsetOptions, type SequenceOffsetReport, sequenceOffsets } from './sequences.js';
