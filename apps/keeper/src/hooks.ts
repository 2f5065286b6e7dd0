import { spawn } from 'node:child_process';
import { redactConninfo } from '@pgfleet/connection';
import type { Logger } from 'pino';

/**
 * Operator hooks: shell commands run on keeper events. Each runs with `/bin/sh -c` and these
 * environment variables (plus the keeper's own environment):
 *
 * | variable           | value                                                           |
 * |--------------------|-----------------------------------------------------------------|
 * | PGFLEET_EVENT      | promote, degrade, restore, role_change, fence, unfence          |
 * | PGFLEET_NODE       | this keeper's node.name                                         |
 * | PGFLEET_ROLE       | the server's role after the event (primary, standby, down)      |
 * | PGFLEET_OLD_ROLE   | the role before the event ('' when unknown)                     |
 * | PGFLEET_TIMELINE   | the server's timeline after the event ('' when unknown)         |
 * | PGFLEET_REASON     | the decision's reason, as logged                                |
 *
 * Hooks run one at a time in event order, off the keeper loop (a slow hook never delays a
 * probe); each is killed after hooks.timeout. A failing hook is logged, never retried.
 */

export type HookEvent = 'promote' | 'degrade' | 'restore' | 'role_change' | 'fence' | 'unfence';

export interface HookContext {
  node: string;
  role: string;
  oldRole?: string;
  timeline?: number | null;
  reason: string;
}

export interface HookResult {
  event: HookEvent;
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  durationMs: number;
}

export class HookRunner {
  private queue: Promise<unknown> = Promise.resolve();
  private readonly commands: Partial<Record<HookEvent, string>>;

  constructor(
    hooks: {
      onPromote?: string;
      onDegrade?: string;
      onRestore?: string;
      onRoleChange?: string;
      onFence?: string;
      timeoutMs: number;
    },
    private readonly logger: Logger,
    private readonly timeoutMs = hooks.timeoutMs,
  ) {
    this.commands = {
      promote: hooks.onPromote,
      degrade: hooks.onDegrade,
      restore: hooks.onRestore,
      role_change: hooks.onRoleChange,
      fence: hooks.onFence,
      unfence: hooks.onFence,
    };
  }

  /** Queues the hook for `event` (no-op when none is configured). Resolves when it finished. */
  run(event: HookEvent, ctx: HookContext): Promise<HookResult | undefined> {
    const command = this.commands[event];
    if (!command) return Promise.resolve(undefined);
    const next = this.queue.then(() => this.exec(event, command, ctx));
    this.queue = next.catch(() => {});
    return next;
  }

  /** Resolves once every queued hook has finished (used on shutdown and in tests). */
  async drain(): Promise<void> {
    await this.queue;
  }

  private exec(event: HookEvent, command: string, ctx: HookContext): Promise<HookResult> {
    const started = performance.now();
    const env = {
      ...process.env,
      PGFLEET_EVENT: event,
      PGFLEET_NODE: ctx.node,
      PGFLEET_ROLE: ctx.role,
      PGFLEET_OLD_ROLE: ctx.oldRole ?? '',
      PGFLEET_TIMELINE: ctx.timeline === null || ctx.timeline === undefined ? '' : String(ctx.timeline),
      PGFLEET_REASON: ctx.reason,
    };
    return new Promise((resolve) => {
      let output = '';
      let timedOut = false;
      // Own process group, so a timeout kills the hook's children too (they hold the pipes).
      const child = spawn('/bin/sh', ['-c', command], {
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      });
      const keep = (chunk: Buffer) => {
        if (output.length < 4096) output += chunk.toString('utf8');
      };
      child.stdout.on('data', keep);
      child.stderr.on('data', keep);
      const timer = setTimeout(() => {
        timedOut = true;
        try {
          if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
        } catch {
          child.kill('SIGKILL');
        }
      }, this.timeoutMs);
      const finish = (exitCode: number | null, signal: string | null, error?: Error) => {
        clearTimeout(timer);
        const result: HookResult = {
          event,
          exitCode,
          signal,
          timedOut,
          durationMs: Math.round(performance.now() - started),
        };
        const fields = { hook: event, ...result, output: redactConninfo(output.trim()).slice(0, 2000) };
        if (error) this.logger.error({ ...fields, err: error.message }, `hook ${event} could not start`);
        else if (exitCode === 0) this.logger.info(fields, `hook ${event} succeeded`);
        else
          this.logger.error(
            fields,
            `hook ${event} failed (${timedOut ? `killed after ${this.timeoutMs} ms` : `exit ${exitCode ?? signal}`})`,
          );
        resolve(result);
      };
      child.on('error', (err) => finish(null, null, err));
      child.on('close', (code, sig) => finish(code, sig));
    });
  }
}
