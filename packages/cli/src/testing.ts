/** Helpers for tests of pgfleet's CLIs and logs (`@pgfleet/cli/testing`; needs vitest). */
export { captureStdio } from './capture.js';
export { duplicateJsonKeys } from './json-keys.js';
