export { eventually } from '@pgfleet/sandbox';
export { ContainersProvider, containerRuntimeUnavailable } from './providers/containers-provider.js';
export { SandboxProvider } from './providers/sandbox-provider.js';
export { createProvider, type ProviderChoice, providerSettingsFromEnv } from './providers/select-provider.js';
export type { ClusterNode, ClusterProvider } from './providers/types.js';
