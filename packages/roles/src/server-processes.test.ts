import { describe, expect, it } from 'vitest';
import { classifyProcessTitle, type ServerProcessKind } from './server-processes.js';

describe('classifyProcessTitle', () => {
  it.each<[string, ServerProcessKind]>([
    ['postgres: postgres postgres 127.0.0.1(47954) idle', 'client'],
    ['postgres: app shop 10.0.0.5(40312) INSERT', 'client'],
    ['postgres: app shop [local] idle in transaction', 'client'],
    ['postgres: app shop ::1(50000) COMMIT waiting for 0/3000060', 'client'],
    ['postgres: app shop 127.0.0.1(1)', 'client'],
    ['postgres: main: app shop 127.0.0.1(40312) idle', 'client'],
    ['postgres: walsender postgres 127.0.0.1(47920) streaming 0/3027178', 'walsender'],
    ['postgres: main: walsender rep 10.0.0.2(5000) streaming 0/3000000', 'walsender'],
    ['postgres: checkpointer', 'auxiliary'],
    ['postgres: background writer', 'auxiliary'],
    ['postgres: walwriter', 'auxiliary'],
    ['postgres: autovacuum launcher', 'auxiliary'],
    ['postgres: autovacuum worker shop', 'auxiliary'],
    ['postgres: logical replication launcher', 'auxiliary'],
    ['postgres: logical replication apply worker for subscription 16385', 'auxiliary'],
    ['postgres: startup recovering 000000010000000000000003', 'auxiliary'],
    ['postgres: walreceiver streaming 0/3000148', 'auxiliary'],
    ['postgres: main: checkpointer', 'auxiliary'],
    ['postgres: parallel worker for PID 4242', 'auxiliary'],
  ])('%s → %s', (title, kind) => {
    expect(classifyProcessTitle(title)).toBe(kind);
  });
});
