import { describe, expect, it } from 'vitest';
import { checkNode, type NodeFacts, type TableFacts } from './checks.js';

function facts(table: Partial<TableFacts>): NodeFacts {
  const t: TableFacts = {
    schema: 'public',
    name: 't',
    columns: [
      { name: 'id', type: 'integer' },
      { name: 'v', type: 'text' },
    ],
    hasPrimaryKey: true,
    replicaIdentity: 'd',
    identityColumns: ['id'],
    uniqueKey: ['id'],
    ...table,
  };
  return {
    node: 'a',
    serverVersionNum: 150000,
    walLevel: 'logical',
    trackCommitTimestamp: true,
    maxReplicationSlots: 10,
    maxWalSenders: 10,
    maxReplicationOrigins: 10,
    otherSlots: 0,
    existingOwnSlots: 0,
    otherOrigins: 0,
    existingOwnOrigins: 0,
    tables: new Map([['public.t', t]]),
  };
}

const messages = (f: NodeFacts, columns?: string[]) =>
  checkNode(f, 2, [{ schema: 'public', name: 't', ...(columns ? { columns } : {}) }]).map((p) => p.message);

describe('checkNode: tables', () => {
  it('accepts a primary key, and REPLICA IDENTITY FULL with a primary key (rows matched on the key)', () => {
    expect(messages(facts({}))).toEqual([]);
    expect(messages(facts({ replicaIdentity: 'f', identityColumns: [] }))).toEqual([]);
  });
  it('refuses REPLICA IDENTITY FULL without any unique key: concurrent updates could not converge', () => {
    expect(
      messages(facts({ replicaIdentity: 'f', hasPrimaryKey: false, identityColumns: [], uniqueKey: null })),
    ).toEqual([
      expect.stringMatching(/REPLICA IDENTITY FULL without a primary key .* each keep their own version/),
    ]);
  });
  it('under FULL, a column list must hold the key the rows are matched on', () => {
    expect(messages(facts({ replicaIdentity: 'f', identityColumns: [] }), ['v'])).toEqual([
      'column list must include key column "id" (rows are matched on it)',
    ]);
  });
  it('refuses DEFERRABLE uniqueness, naming each constraint: a replica does not check it, rows would be written twice', () => {
    expect(messages(facts({ deferrableUnique: ['t_pkey'] }))).toEqual([
      expect.stringMatching(
        /^DEFERRABLE constraint "t_pkey": replicated writes run as a replica, .* written twice; drop and re-create it without DEFERRABLE$/,
      ),
    ]);
    expect(messages(facts({ deferrableUnique: ['t_pkey', 't_v_key'] }))).toEqual([
      expect.stringMatching(
        /^DEFERRABLE constraints "t_pkey", "t_v_key": .* re-create them without DEFERRABLE$/,
      ),
    ]);
  });
  it('refuses a table without a primary key under the default identity', () => {
    expect(messages(facts({ hasPrimaryKey: false, identityColumns: [], uniqueKey: null }))).toEqual([
      expect.stringMatching(/^no primary key/),
    ]);
  });
});
