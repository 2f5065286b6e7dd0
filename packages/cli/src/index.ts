export { type ArgGrammar, type ParsedArgs, parseCommandLine, UsageError } from './args.js';
export {
  type ConfigKey,
  type ConfigKeyKind,
  type EnvOverridesOptions,
  envVarName,
  flagName,
  isConfigFlag,
  isPlainObject,
  mergeLayers,
  overridesFromEnv,
  overridesFromFlags,
  readConfigFile,
  setPath,
} from './config-sources.js';
export {
  type CommandHelp,
  findCommand,
  type OptionHelp,
  type ProgramHelp,
  renderCommandHelp,
  renderProgramHelp,
} from './help.js';
export {
  createLogger,
  LOG_FORMATS,
  LOG_LEVELS,
  type LogFormat,
  type LoggerOptions,
  type LogLevel,
  resolveLogFormat,
} from './logger.js';
export { packageVersion } from './version.js';
