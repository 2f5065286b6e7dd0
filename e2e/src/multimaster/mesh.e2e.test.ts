import type { ReplicatorHandle, ResolvedConfig } from '@pgfleet/multimaster';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClusterNode } from '../providers/types.js';
import { eventually } from '../support/eventually.js';
import { suiteProvider } from '../support/suite-provider.js';
import {
  captureLogs,
  checkTables,
  client,
  conflictsOn,
  count,
  initAndStart,
  meshConfig,
  onAll,
  originPositions,
  quiesce,
  sleep,
  slotPositions,
  startProviderNodes,
} from './fixture.js';

// On the sandbox in the e2e phase, on containers in the containers phase (issue 12).
const suite = await suiteProvider();

// Identifiers of scenario 14: quotes, spaces, unicode and mixed case everywhere.
const WEIRD_SCHEMA = 'Wéird "Schema"';
const WEIRD_TABLE = 'Tä ble.x';
const qi = (s: string) => `"${s.replaceAll('"', '""')}"`;
const WEIRD = `${qi(WEIRD_SCHEMA)}.${qi(WEIRD_TABLE)}`;

const DDL = `
  CREATE SCHEMA s1;
  CREATE TABLE s1.accounts (id int PRIMARY KEY, origin text NOT NULL, v int NOT NULL, note text);
  CREATE TABLE s1.events (id bigint PRIMARY KEY, origin text NOT NULL, payload jsonb);
  CREATE SCHEMA s2;
  CREATE TABLE s2.echo (id int PRIMARY KEY, v text);
  CREATE SCHEMA s3;
  CREATE TYPE s3.mood AS ENUM ('ok', 'sad', 'with "quote"');
  CREATE DOMAIN s3.posint AS int CHECK (VALUE > 0);
  CREATE TABLE s3.types (
    id int PRIMARY KEY, n numeric(40,20), i8 int8, tstz timestamptz, ts timestamp, d date,
    f8 float8, f4 real, b bytea, j json, jb jsonb, arr text[], r int4range, e s3.mood,
    dom s3.posint, u uuid, ip inet, t text);
  CREATE SCHEMA s4;
  CREATE TABLE s4.docs (id int PRIMARY KEY, small int NOT NULL, big text);
  ALTER TABLE s4.docs ALTER COLUMN big SET STORAGE EXTERNAL;
  CREATE SCHEMA s11;
  CREATE TABLE s11.t (id int PRIMARY KEY, v text);
  CREATE SCHEMA ${qi(WEIRD_SCHEMA)};
  CREATE TABLE ${WEIRD} (${qi('Key "Col"')} int PRIMARY KEY, ${qi('Mixed Case')} text, ${qi('ünï cødé')} int);`;

/** [column, SQL type for the IS NOT DISTINCT FROM comparison; null = compare text only] */
const TYPE_COLUMNS: Array<[string, string | null]> = [
  ['n', 'numeric(40,20)'],
  ['i8', 'int8'],
  ['tstz', 'timestamptz'],
  ['ts', 'timestamp'],
  ['d', 'date'],
  ['f8', 'float8'],
  ['f4', 'real'],
  ['b', 'bytea'],
  ['j', null], // json has no equality operator: its text form (whitespace included) is the value
  ['jb', 'jsonb'],
  ['arr', 'text[]'],
  ['r', 'int4range'],
  ['e', 's3.mood'],
  ['dom', 's3.posint'],
  ['u', 'uuid'],
  ['ip', 'inet'],
  ['t', 'text'],
];

describe.skipIf(!suite.provider)(`multimaster: 3-node mesh (${suite.label})`, () => {
  const sb = suite.provider;
  let a: ClusterNode;
  let b: ClusterNode;
  let c: ClusterNode;
  let nodes: ClusterNode[];
  let config: ResolvedConfig;
  let rep: ReplicatorHandle;
  const logs = captureLogs();

  beforeAll(async () => {
    nodes = await startProviderNodes(sb!, ['a', 'b', 'c']);
    [a, b, c] = nodes as [ClusterNode, ClusterNode, ClusterNode];
    await onAll(nodes, DDL);
    config = meshConfig(nodes, {
      tables: ['s1.*', 's2.echo', 's3.types', 's4.docs', 's11.t', `${qi(WEIRD_SCHEMA)}.${qi(WEIRD_TABLE)}`],
    });
    rep = await initAndStart(config, logs.logger);
  });

  afterAll(async () => {
    await rep?.stop();
    await sb?.destroy();
  });

  it('1: concurrent disjoint-key inserts/updates/deletes on all nodes converge with equal checksums, no duplicates, and the mesh goes quiet (no loop)', async () => {
    const perNode = 120;
    const work = async (node: ClusterNode, base: number) => {
      const cl: pg.Client = await client(node);
      try {
        for (let i = 1; i <= perNode; i += 4) {
          // Mix single-row and multi-row transactions.
          if (i % 8 === 1) {
            await cl.query(
              `INSERT INTO s1.accounts SELECT g, $2, g, 'n' || g FROM generate_series($1::int, $1::int + 3) g`,
              [base + i, node.name],
            );
          } else {
            await cl.query('BEGIN');
            for (let j = 0; j < 4; j++)
              await cl.query('INSERT INTO s1.accounts VALUES ($1, $2, $1, NULL)', [base + i + j, node.name]);
            await cl.query('COMMIT');
          }
          await cl.query(`INSERT INTO s1.events VALUES ($1::int8, $2, jsonb_build_object('i', $1::int8))`, [
            base + i,
            node.name,
          ]);
        }
        await cl.query('UPDATE s1.accounts SET v = v + 1000000 WHERE origin = $1 AND id % 2 = 0', [
          node.name,
        ]);
        for (let i = 3; i <= perNode; i += 10)
          await cl.query(`UPDATE s1.accounts SET note = 'u' WHERE id = $1`, [base + i]);
        await cl.query('DELETE FROM s1.accounts WHERE origin = $1 AND id % 4 = 0', [node.name]);
        await cl.query('DELETE FROM s1.events WHERE origin = $1 AND id % 3 = 0', [node.name]);
      } finally {
        await cl.end();
      }
    };
    await Promise.all(nodes.map((n, i) => work(n, (i + 1) * 100_000)));
    await quiesce(nodes);

    const checks = await checkTables(config, ['s1.accounts', 's1.events']);
    expect(checks).toHaveLength(2);
    for (const t of checks) {
      expect(t.equal, `${t.table}: ${JSON.stringify(t)}`).toBe(true);
      expect(t.differingKeys).toEqual([]);
    }
    const expectAccounts = 3 * (perNode - perNode / 4);
    for (const n of nodes) {
      expect(await count(n, 's1.accounts')).toBe(expectAccounts);
      const rows = await n.query<{ origin: string; n: number; big: number; notes: number }>(
        `SELECT origin, count(*)::int AS n, count(*) FILTER (WHERE v > 1000000)::int AS big,
                count(*) FILTER (WHERE note = 'u')::int AS notes
           FROM s1.accounts GROUP BY origin ORDER BY origin`,
      );
      expect(rows).toEqual(
        ['a', 'b', 'c'].map((o) => ({ origin: o, n: 90, big: 30, notes: expect.any(Number) })),
      );
      // Every key changed on one node only: nothing here is a conflict, nothing applied twice.
      expect(await conflictsOn(n, 's1', 'accounts')).toEqual([]);
      expect(await conflictsOn(n, 's1', 'events')).toEqual([]);
    }

    // Nothing conflicted, so no edge ever fell back to the careful (row by row) path.
    for (const e of rep.status().edges) expect(e.restarts, e.edge).toBe(0);

    // No loop: slots and origins stop moving. A loop would keep them advancing forever.
    const stable = await eventually(
      'slots and origins to stay put for 1.5 s',
      async () => {
        const before = { slots: await slotPositions(nodes), origins: await originPositions(nodes) };
        const applied = rep.status().edges.map((e) => e.appliedTransactions);
        await sleep(1500);
        const after = { slots: await slotPositions(nodes), origins: await originPositions(nodes) };
        return {
          same: JSON.stringify(before) === JSON.stringify(after),
          appliedSame:
            JSON.stringify(applied) === JSON.stringify(rep.status().edges.map((e) => e.appliedTransactions)),
          after,
        };
      },
      (r) => r.same && r.appliedSame,
      { timeoutMs: 15_000 },
    );
    expect(Object.keys(stable.after.slots)).toHaveLength(6);
    expect(Object.keys(stable.after.origins)).toHaveLength(6);
  });

  it('2: an insert on a is applied exactly once on b and c and never re-applied on a (echo suppression)', async () => {
    await quiesce(nodes);
    const before = new Map(rep.status().edges.map((e) => [e.edge, e]));
    const originsBefore = await originPositions(nodes);

    await a.query(`INSERT INTO s2.echo VALUES (1, 'from a')`);
    for (const n of [b, c])
      await eventually(
        `row on ${n.name}`,
        () => count(n, 's2.echo'),
        (x) => x === 1,
      );
    await quiesce(nodes);
    await sleep(500);

    for (const n of nodes) expect(await count(n, 's2.echo')).toBe(1);
    // On b and c the row was written by the apply of edge a->x (origin pgfleet_a)...
    for (const n of [b, c]) {
      const r = await n.query<{ origin: string }>(
        `SELECT o.roname AS origin FROM s2.echo t, pg_xact_commit_timestamp_origin(t.xmin) x
           JOIN pg_replication_origin o ON o.roident = x.roident`,
      );
      expect(r).toEqual([{ origin: 'pgfleet_a' }]);
    }
    // ...and on a it is still a's own row, never re-applied.
    const onA = await a.query<{ roident: string }>(
      `SELECT x.roident::text AS roident FROM s2.echo t, pg_xact_commit_timestamp_origin(t.xmin) x`,
    );
    expect(onA).toEqual([{ roident: '0' }]);

    const after = new Map(rep.status().edges.map((e) => [e.edge, e]));
    const delta = (edge: string, k: 'appliedTransactions' | 'echoSkippedTransactions') =>
      (after.get(edge)?.[k] ?? 0) - (before.get(edge)?.[k] ?? 0);
    expect(delta('a_b', 'appliedTransactions')).toBe(1);
    expect(delta('a_c', 'appliedTransactions')).toBe(1);
    for (const e of ['b_a', 'c_a', 'b_c', 'c_b']) expect(delta(e, 'appliedTransactions')).toBe(0);
    const originsAfter = await originPositions(nodes);
    for (const key of ['a:pgfleet_b', 'a:pgfleet_c', 'b:pgfleet_c', 'c:pgfleet_b'])
      expect(originsAfter[key]).toBe(originsBefore[key]);

    // Every version receives the applied copies (echoes) and drops them here: their Begin and
    // Origin messages tell what a source had applied from other nodes (what counts as a race).
    for (const e of rep.status().edges) expect(e.originFilter).toBe('client');
    for (const e of ['b_a', 'b_c', 'c_a', 'c_b'])
      expect(delta(e, 'echoSkippedTransactions')).toBeGreaterThanOrEqual(1);
    const modeLines = logs.lines.filter((l) => l.originFilter !== undefined);
    expect(new Set(modeLines.map((l) => l.originFilter))).toEqual(new Set(['client']));
  });

  it('3: every type keeps its exact value on every node (numeric, int8 > 2^53, µs timestamps, infinities, NaN, bytea, json, arrays, ranges, enum, domain, uuid, inet, NULL vs empty)', async () => {
    await a.query(
      `INSERT INTO s3.types VALUES
        (1, '12345678901234567890.12345678901234567890', 9007199254740993, '2024-02-29 23:59:59.999999+00',
         '1999-12-31 23:59:59.000001', 'infinity', 'NaN', 1.1, '\\x00ff10', '{ "a" :  1,  "b":[1, 2 ] }',
         '{"b": [1, 2], "a": {"x": null}}', ARRAY['q"uote', NULL, 'back\\slash', '', 'NULL', 'comma,brace}'],
         '[1,10)', 'with "quote"', 42, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '192.168.0.1/24', ''),
        (2, '-0.00000000000000000001', -9223372036854775808, 'infinity', '-infinity', '-infinity',
         'Infinity', '-Infinity', '\\x', '[]', '"str"', '{}', 'empty', 'ok', 1,
         '00000000-0000-0000-0000-000000000000', '::1', NULL),
        (3, 'NaN', 0, '-infinity', '2000-01-01 00:00:00.5', '2024-01-01', '-Infinity', 'NaN', NULL, 'null',
         'null', ARRAY[NULL]::text[], '(,5]', 'sad', 7, NULL, '10.0.0.0/8', ' ')`,
    );
    // Update one row on c so the set-based UPDATE path carries the values too.
    await eventually(
      'types rows on c',
      () => count(c, 's3.types'),
      (n) => n === 3,
    );
    await c.query(
      `UPDATE s3.types SET n = '99999999999999999999.99999999999999999999', arr = ARRAY['x', NULL, '"', '\\'],
                           j = '{"k" :"v" }', f8 = '1.0000000000000002' WHERE id = 2`,
    );
    await quiesce(nodes);

    const textOf = async (n: ClusterNode) =>
      n.query(
        `SELECT id, ${TYPE_COLUMNS.map(([col]) => `${col}::text AS ${col}`).join(', ')} FROM s3.types ORDER BY id`,
      );
    const ref = await textOf(a);
    expect(ref).toHaveLength(3);
    expect(ref[0]?.j).toBe('{ "a" :  1,  "b":[1, 2 ] }');
    expect(ref[0]?.i8).toBe('9007199254740993');
    expect(ref[1]?.n).toBe('99999999999999999999.99999999999999999999');
    expect(ref[1]?.t).toBeNull();
    expect(ref[0]?.t).toBe('');
    for (const n of [b, c]) {
      expect(await textOf(n), `text forms on ${n.name}`).toEqual(ref);
      // Value equality of each column against a's text form, parsed by the server.
      for (const row of ref) {
        for (const [col, type] of TYPE_COLUMNS) {
          const cond = type
            ? `${col} IS NOT DISTINCT FROM $2::${type}`
            : `${col}::text IS NOT DISTINCT FROM $2::text`;
          const r = await n.query<{ same: boolean }>(`SELECT (${cond}) AS same FROM s3.types WHERE id = $1`, [
            row.id,
            row[col],
          ]);
          expect(r, `${n.name} id=${row.id} ${col}`).toEqual([{ same: true }]);
        }
      }
    }
  });

  it('4: an update of a small column on a row with a 1 MB TOASTed value leaves the value intact downstream', async () => {
    // Random hex does not compress, so the value is stored out of line (TOAST).
    await a.query(
      `INSERT INTO s4.docs SELECT 1, 0, string_agg(md5(random()::text), '') FROM generate_series(1, 32768)`,
    );
    const ref = await a.query<{ len: number; h: string }>(
      'SELECT length(big) AS len, md5(big) AS h FROM s4.docs WHERE id = 1',
    );
    expect(ref[0]?.len).toBe(1_048_576);
    const external = await a.query<{ toasted: boolean }>(
      `SELECT pg_relation_size(reltoastrelid) > 1000000 AS toasted FROM pg_class WHERE oid = 's4.docs'::regclass`,
    );
    expect(external).toEqual([{ toasted: true }]);
    await quiesce(nodes);
    // Updated on a (the row's author), then on b (c then sees an update from another node
    // than the row's last writer, which takes the careful path: same rule there).
    await a.query('UPDATE s4.docs SET small = 1 WHERE id = 1');
    await quiesce(nodes);
    await b.query('UPDATE s4.docs SET small = 2 WHERE id = 1');
    await quiesce(nodes);
    for (const n of nodes) {
      expect(
        await n.query('SELECT small, length(big) AS len, md5(big) AS h FROM s4.docs WHERE id = 1'),
        n.name,
      ).toEqual([{ small: 2, len: ref[0]?.len, h: ref[0]?.h }]);
    }
  });

  it('11: TRUNCATE on one node empties the table everywhere, once', async () => {
    for (const [i, n] of nodes.entries())
      await n.query(`INSERT INTO s11.t SELECT g, $1 FROM generate_series($2::int, $2::int + 9) g`, [
        n.name,
        i * 100,
      ]);
    await quiesce(nodes);
    for (const n of nodes) expect(await count(n, 's11.t')).toBe(30);
    const applied = (edge: string) =>
      rep.status().edges.find((e) => e.edge === edge)?.appliedTransactions ?? 0;
    const beforeBA = applied('b_a');
    const beforeBC = applied('b_c');
    await b.query('TRUNCATE s11.t');
    for (const n of [a, c])
      await eventually(
        `truncate on ${n.name}`,
        () => count(n, 's11.t'),
        (x) => x === 0,
      );
    // Rows written right after the truncate survive: it is not applied again (no echo).
    await a.query(`INSERT INTO s11.t VALUES (1000, 'after')`);
    await quiesce(nodes);
    await sleep(500);
    for (const n of nodes)
      expect(await n.query('SELECT id, v FROM s11.t')).toEqual([{ id: 1000, v: 'after' }]);
    expect(applied('b_a') - beforeBA).toBe(1);
    expect(applied('b_c') - beforeBC).toBe(1);
  });

  it('14: identifiers with quotes, spaces, unicode and mixed case in schema, table and column names replicate', async () => {
    const key = qi('Key "Col"');
    const mixed = qi('Mixed Case');
    const uni = qi('ünï cødé');
    await a.query(`INSERT INTO ${WEIRD} (${key}, ${mixed}, ${uni}) VALUES (1, 'from a', 1), (2, 'two', 2)`);
    await b.query(`INSERT INTO ${WEIRD} (${key}, ${mixed}, ${uni}) VALUES (10, 'from b', 10)`);
    await quiesce(nodes);
    await c.query(`UPDATE ${WEIRD} SET ${mixed} = 'changed on c' WHERE ${key} = 1`);
    await c.query(`DELETE FROM ${WEIRD} WHERE ${key} = 2`);
    await quiesce(nodes);
    for (const n of nodes) {
      expect(
        await n.query(`SELECT ${key} AS k, ${mixed} AS m, ${uni} AS u FROM ${WEIRD} ORDER BY 1`),
        n.name,
      ).toEqual([
        { k: 1, m: 'changed on c', u: 1 },
        { k: 10, m: 'from b', u: 10 },
      ]);
    }
    const [check] = await checkTables(config, [`${WEIRD_SCHEMA}.${WEIRD_TABLE}`]);
    expect(check?.equal).toBe(true);
    for (const e of rep.status().edges) expect(e.state, e.edge).toBe('streaming');
  });
});
