/**
 * `npm run demo`: a local pgfleet cluster on the embedded default (sandbox servers).
 * Keeper: primary + standby + witness with keepers, then a primary kill and the failover.
 * Multimaster: a 3-node mesh taking writes on every node, converging, and one conflict
 * resolved the same way everywhere; then a mesh node that is a keeper-protected primary +
 * standby loses its primary under writes and the mesh follows. Everything is removed at the end, also on Ctrl-C.
 * PGFLEET_PG_VERSION picks the server major; PGFLEET_DEMO_LOG=info shows the daemons' logs
 * (as readable lines on stderr; PGFLEET_DEMO_LOG_FORMAT=json for JSON).
 */
import { createLogger, LOG_FORMATS, LOG_LEVELS, type LogFormat, type LogLevel } from '@pgfleet/cli';
import { Sandbox } from '@pgfleet/sandbox';
import { keeperDemo } from './keeper-demo.js';
import { meshDemo } from './mesh-demo.js';
import { meshFailoverDemo } from './mesh-failover-demo.js';

const say = (line = '') => process.stdout.write(`${line}\n`);
async function main(): Promise<void> {
  // The story goes to stdout; the daemons stay quiet unless asked, so no log line cuts into it.
  const level = process.env.PGFLEET_DEMO_LOG ?? 'silent';
  const format = process.env.PGFLEET_DEMO_LOG_FORMAT ?? 'pretty';
  if (
    !(LOG_LEVELS as readonly string[]).includes(level) ||
    !(LOG_FORMATS as readonly string[]).includes(format)
  )
    throw new Error(
      `PGFLEET_DEMO_LOG must be one of ${LOG_LEVELS.join(', ')} and PGFLEET_DEMO_LOG_FORMAT one of ${LOG_FORMATS.join(', ')}`,
    );
  const logger = createLogger({ level: level as LogLevel, format: format as LogFormat });
  const sb = await Sandbox.create({ name: 'demo' });
  const stop = async () => {
    await sb.destroy();
  };
  process.once('SIGINT', () => void stop().then(() => process.exit(130)));
  try {
    say(`pgfleet demo on PostgreSQL ${sb.major} (${sb.installation.source}: ${sb.installation.binDir})`);
    say();
    await keeperDemo(sb, logger, say);
    await meshDemo(sb, logger, say);
    await meshFailoverDemo(sb, logger, say);
  } finally {
    await stop();
    say('demo: cleaned up');
  }
}

main().catch((err: Error) => {
  process.stderr.write(`demo failed: ${err.message}\n`);
  process.exitCode = 1;
});
