import { parseConninfo, redactConninfo } from '@pgfleet/connection';
import { z } from 'zod';
import { parseDuration } from './units.js';

/** Field validators shared by config.ts and cluster-settings.ts (one message per kind of mistake). */

/** A duration as text ('500ms', '1s', '2m') or a number of ms; resolves to milliseconds. */
export const duration = z.union([z.string(), z.number()]).transform((v, ctx) => {
  const ms = parseDuration(v);
  if (ms === undefined) {
    ctx.addIssue({
      code: 'custom',
      message: `bad duration ${JSON.stringify(v)} (use e.g. '500ms', '1s', '2m')`,
    });
    return z.NEVER;
  }
  return ms;
});

/** A libpq conninfo or URI; the error never repeats a password. */
export const conninfo = z
  .string()
  .min(1, 'must not be empty')
  .superRefine((v, ctx) => {
    try {
      parseConninfo(v);
    } catch (err) {
      ctx.addIssue({
        code: 'custom',
        message: `not a valid conninfo: ${redactConninfo((err as Error).message)}`,
      });
    }
  });
