import { createRequire } from 'node:module';
import pino, { type DestinationStream, type Level, type Logger } from 'pino';
import type PinoPretty from 'pino-pretty';

// pino-pretty (and its dependencies) load only when a pretty logger is made: a daemon logging
// JSON, or a CLI started many times by a supervisor, does not pay for it at start-up.
const require = createRequire(import.meta.url);

/**
 * Logs for people and for machines. `pretty`: one readable line per event (time, level,
 * component, node, message, then the event's other fields); `json`: pino's JSON lines;
 * `auto`: pretty when the destination is a terminal, else JSON (journald, files, pipes).
 */
export const LOG_FORMATS = ['auto', 'pretty', 'json'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface LoggerOptions {
  level: LogLevel;
  format: LogFormat;
  /** File descriptor to write to; stderr (2) by default, so stdout stays for command output. */
  fd?: number;
  /** Overrides the terminal check of `auto` (tests). */
  isTerminal?: boolean;
}

/** Fields shown in a pretty line's prefix rather than among the trailing key fields. */
const PREFIX_FIELDS = ['component', 'node'] as const;

function prettyStream(fd: number, colorize: boolean): DestinationStream {
  const pretty = require('pino-pretty') as typeof PinoPretty;
  return pretty({
    destination: fd,
    sync: true,
    colorize,
    singleLine: true,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: ['pid', 'hostname', ...PREFIX_FIELDS].join(','),
    messageFormat: (log: Record<string, unknown>, messageKey: string) => {
      const prefix = PREFIX_FIELDS.map((k) => log[k])
        .filter((v) => typeof v === 'string' && v !== '')
        .join(' ');
      const msg = String(log[messageKey] ?? '');
      return prefix ? `${prefix}: ${msg}` : msg;
    },
  });
}

export function resolveLogFormat(format: LogFormat, isTerminal: boolean): 'pretty' | 'json' {
  if (format === 'auto') return isTerminal ? 'pretty' : 'json';
  return format;
}

export function createLogger(o: LoggerOptions): Logger {
  const fd = o.fd ?? 2;
  const tty =
    o.isTerminal ?? (fd === 2 ? process.stderr.isTTY === true : fd === 1 && process.stdout.isTTY === true);
  const level = o.level as Level | 'silent';
  if (resolveLogFormat(o.format, tty) === 'pretty') return pino({ level }, prettyStream(fd, tty));
  return pino({ level }, pino.destination({ fd, sync: true }));
}
