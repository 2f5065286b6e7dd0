import {
  createProvider,
  type ProviderSettings,
  providerSettingsFromEnv,
} from '../providers/select-provider.js';
import type { ClusterProvider } from '../providers/types.js';

export interface SuiteProvider {
  provider: ClusterProvider | undefined;
  /** Set when the suite must be skipped; the text says why (shown in the test name). */
  skipReason: string | undefined;
  label: string;
}

/**
 * The provider for one e2e file, chosen from the environment. A missing container runtime
 * under E2E_PROVIDER=containers becomes a skip with its reason, never a silent pass.
 */
export async function suiteProvider(overrides: Partial<ProviderSettings> = {}): Promise<SuiteProvider> {
  const settings = { ...providerSettingsFromEnv(), ...overrides };
  try {
    const provider = await createProvider(settings);
    return { provider, skipReason: undefined, label: `${provider.kind}, PostgreSQL ${provider.major}` };
  } catch (err) {
    if (settings.choice !== 'containers') throw err;
    const reason = (err as Error).message;
    // Reporters do not print the names of skipped suites: say why here, once per file.
    console.warn(`e2e: containers suite skipped: ${reason}`);
    return { provider: undefined, skipReason: reason, label: `skipped: ${reason}` };
  }
}
