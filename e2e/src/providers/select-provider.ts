import { ContainersProvider, containerRuntimeUnavailable } from './containers-provider.js';
import { SandboxProvider } from './sandbox-provider.js';
import type { ClusterProvider } from './types.js';

export type ProviderChoice = 'auto' | 'sandbox' | 'containers';

export interface ProviderSettings {
  choice: ProviderChoice;
  major?: number;
  image?: string;
  binDir?: string;
  /** Set by scripts/test.mjs when it knows why no runtime can be had here (a clearer skip). */
  unavailable?: string;
}

/** Reads E2E_PROVIDER, PGFLEET_PG_VERSION, E2E_IMAGE, PG_BIN, E2E_CONTAINERS_UNAVAILABLE once, at the edge. */
export function providerSettingsFromEnv(env: NodeJS.ProcessEnv = process.env): ProviderSettings {
  const choice = (env.E2E_PROVIDER ?? 'auto') as ProviderChoice;
  if (!['auto', 'sandbox', 'containers'].includes(choice)) {
    throw new Error(`E2E_PROVIDER='${env.E2E_PROVIDER}' is not one of auto, sandbox, containers`);
  }
  return {
    choice,
    major: env.PGFLEET_PG_VERSION ? Number(env.PGFLEET_PG_VERSION) : undefined,
    image: env.E2E_IMAGE,
    binDir: env.PG_BIN,
    unavailable: env.E2E_CONTAINERS_UNAVAILABLE || undefined,
  };
}

/**
 * `auto` takes containers when a container runtime answers, else the sandbox, and says so in
 * one line. `containers` without a runtime throws, so callers can skip with the reason.
 */
export async function createProvider(
  settings: ProviderSettings,
  log: (line: string) => void = (l) => console.log(l),
): Promise<ClusterProvider> {
  if (settings.choice === 'sandbox')
    return SandboxProvider.create({ major: settings.major, binDir: settings.binDir });
  const missing = settings.unavailable ?? (await containerRuntimeUnavailable());
  if (settings.choice === 'containers') {
    if (missing) throw new Error(`E2E_PROVIDER=containers but ${missing}`);
    return ContainersProvider.create({ major: settings.major, image: settings.image });
  }
  if (missing) {
    log(`e2e: no container runtime (${missing}); using the sandbox provider`);
    return SandboxProvider.create({ major: settings.major, binDir: settings.binDir });
  }
  return ContainersProvider.create({ major: settings.major, image: settings.image });
}
