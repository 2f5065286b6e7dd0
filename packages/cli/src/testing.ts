/** Helpers for tests of pgfleet's CLIs and logs (`@pgfleet/cli/testing`). */
export { duplicateJsonKeys } from './json-keys.js';
