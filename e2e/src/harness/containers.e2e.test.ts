import { afterAll, describe, expect, it } from 'vitest';
import { suiteProvider } from '../support/suite-provider.js';

// Runs the provider basics on containers when a runtime answers; otherwise the suite is
// reported as skipped, and its name carries the reason.
const suite = await suiteProvider({ choice: 'containers' });

describe.skipIf(!suite.provider)(`containers provider (${suite.label})`, () => {
  afterAll(async () => {
    await suite.provider?.destroy();
  });

  it('runs a primary and a pg_basebackup standby that replays its writes', async () => {
    const p = await suite.provider!.startPrimary('cp');
    await p.query('CREATE TABLE t (id int)');
    const s = await suite.provider!.startStandby('cs', p);
    await p.query('INSERT INTO t VALUES (1)');
    let n = '0';
    for (let i = 0; i < 100 && n !== '1'; i++) {
      n = (await s.query<{ n: string }>('SELECT count(*) AS n FROM t'))[0]?.n ?? '0';
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(n).toBe('1');
  });
});
