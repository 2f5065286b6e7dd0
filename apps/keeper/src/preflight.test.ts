import type { RoleInfo } from '@pgfleet/roles';
import { describe, expect, it } from 'vitest';
import { judgeNode, type Severity } from './preflight.js';

const down = (over: Partial<RoleInfo>): RoleInfo => ({ role: 'down', reason: '127.0.0.1:5432: x', ...over });

describe('judgeNode (what check reports, what run refuses)', () => {
  it.each<[string, string, RoleInfo, { standbyFrom?: string; peerStreams?: boolean }, Severity, RegExp]>([
    [
      'a serving node',
      'node.conninfo',
      { role: 'primary', reason: 'ok' },
      {},
      'ok',
      /^node.conninfo: node a is primary$/,
    ],
    [
      'a wrong password is an answer, and a configuration problem',
      'peer.conninfo',
      down({
        reason: '127.0.0.1:5432: password authentication failed for user "postgres" (28P01)',
        downCause: 'auth_failed',
        sqlState: '28P01',
        answered: true,
      }),
      {},
      'config',
      /^peer.conninfo: node a answered: password authentication failed for user "postgres" \(28P01\): check the user and password \(or ~\/.pgpass, PGPASSWORD\) in peer.conninfo$/,
    ],
    [
      'too many connections: alive, not a configuration problem',
      'peer.conninfo',
      down({
        reason: '127.0.0.1:5432: sorry, too many clients already (53300)',
        downCause: 'too_many_connections',
        sqlState: '53300',
        answered: true,
      }),
      {},
      'down',
      /answered: sorry, too many clients already \(53300\) \(alive, not ready\)/,
    ],
    [
      'no password anywhere names the key',
      'node.conninfo',
      down({
        reason:
          '127.0.0.1:5432: connect on 127.0.0.1:5432 failed: the server asks for a password and none is given (no password in the conninfo, no PGPASSWORD, no matching ~/.pgpass entry)',
        downCause: 'error',
        answered: false,
      }),
      {},
      'config',
      /^node.conninfo: node a: connect on 127.0.0.1:5432 failed: the server asks for a password and none is given/,
    ],
    [
      'a host that does not resolve',
      'peer.conninfo',
      down({ downCause: 'host_not_found', answered: false }),
      {},
      'config',
      /peer.conninfo: node a:/,
    ],
    [
      'a peer that refuses: down',
      'peer.conninfo',
      down({
        reason: '127.0.0.1:5: connection refused (ECONNREFUSED)',
        downCause: 'refused',
        answered: false,
      }),
      {},
      'down',
      /is down: connection refused/,
    ],
    [
      'a peer that refuses while our walreceiver streams from the primary: the port is wrong',
      'peer.conninfo',
      down({
        reason: '127.0.0.1:5: connection refused (ECONNREFUSED)',
        downCause: 'refused',
        answered: false,
      }),
      { standbyFrom: '127.0.0.1:5432' },
      'config',
      /refuses connections .*, yet this standby streams from its primary at 127.0.0.1:5432: peer.conninfo does not point at that server/,
    ],
    [
      'a standby that refuses while it streams from us: the port is wrong',
      'peer.conninfo',
      down({
        reason: '127.0.0.1:5: connection refused (ECONNREFUSED)',
        downCause: 'refused',
        answered: false,
      }),
      { peerStreams: true },
      'config',
      /yet b streams from this primary/,
    ],
    [
      'a timeout is a down node',
      'peer.conninfo',
      down({ downCause: 'timeout', answered: false }),
      {},
      'down',
      /is down/,
    ],
  ])('%s', (_name, key, info, local, severity, line) => {
    const f = judgeNode(
      { key, node: 'a', info },
      {
        ...(local.standbyFrom ? { receiverStreamingFrom: local.standbyFrom } : {}),
        ...(local.peerStreams ? { peerStreams: true } : {}),
      },
      'b',
    );
    expect(f.severity).toBe(severity);
    expect(f.line).toMatch(line);
  });
});
