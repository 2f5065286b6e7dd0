/**
 * `npm run demo`: a local pgfleet cluster on the embedded default (sandbox servers).
 * Starts a primary + standby and a 3-node logical mesh, prints where they are and what they
 * are doing, then cleans everything up (also on Ctrl-C).
 */
import { Sandbox } from '@pgfleet/sandbox';
import pino from 'pino';
import { meshDemo } from './mesh-demo.js';

const say = (line = '') => process.stdout.write(`${line}\n`);
const redact = (conninfo: string) => conninfo.replace(/password=\S+/, 'password=***');

async function main(): Promise<void> {
  const logger = pino({ level: process.env.PGFLEET_DEMO_LOG ?? 'warn' }, pino.destination(2));
  const major = process.env.PGFLEET_PG_VERSION ? Number(process.env.PGFLEET_PG_VERSION) : undefined;
  const sb = await Sandbox.create({ name: 'demo', major });
  const stop = async () => {
    await sb.destroy();
  };
  process.once('SIGINT', () => void stop().then(() => process.exit(130)));
  try {
    say(`pgfleet demo on PostgreSQL ${sb.major} (${sb.installation.source}: ${sb.installation.binDir})`);
    say();
    say('== keeper pair ==');
    const primary = await sb.startNode('primary');
    const standby = await sb.createStandby('standby', primary);
    for (const n of [primary, standby]) {
      const [r] = await n.query<{ rec: boolean }>('SELECT pg_is_in_recovery() AS rec');
      say(`  ${n.name.padEnd(8)} ${r?.rec ? 'standby' : 'primary'}  ${redact(n.conninfo())}`);
    }
    const repl = await primary.query<{ application_name: string; state: string; sync_state: string }>(
      'SELECT application_name, state, sync_state FROM pg_stat_replication',
    );
    for (const r of repl) say(`  replication: ${r.application_name} ${r.state} (${r.sync_state})`);
    say();
    await meshDemo(sb, logger, say);
  } finally {
    await stop();
    say('demo: cleaned up');
  }
}

main().catch((err: Error) => {
  process.stderr.write(`demo failed: ${err.message}\n`);
  process.exitCode = 1;
});
