import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ReplicatorHandle, ResolvedConfig } from '@pgfleet/multimaster';
import type { Sandbox, SandboxNode } from '@pgfleet/sandbox';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pgfleetMm } from './cli-runner.js';
import {
  captureLogs,
  checkTables,
  initAndStart,
  meshConfig,
  onAll,
  quiesce,
  startNodes,
  writePgpass,
} from './fixture.js';

/**
 * Every built-in kind of value crosses the mesh unchanged although each database has
 * different defaults for everything that changes a value's text (DateStyle, IntervalStyle,
 * TimeZone, extra_float_digits, bytea_output, lc_monetary, xmloption, array_nulls). Each
 * node writes rows into the replicated table and the same rows into an unreplicated
 * reference copy; every node's replicated rows must equal their source's reference rows,
 * compared in binary (the types' send functions) wherever the binary form holds no
 * node-local OIDs, else as text under fixed settings.
 */

/** Per-node database defaults, as different from each other as PostgreSQL allows. */
const NODE_DEFAULTS: Record<string, Record<string, string>> = {
  a: {
    DateStyle: 'SQL, DMY',
    IntervalStyle: 'sql_standard',
    TimeZone: 'America/St_Johns',
    extra_float_digits: '-3',
    bytea_output: 'escape',
    lc_monetary: 'de_DE.UTF-8',
  },
  b: {
    DateStyle: 'Postgres, MDY',
    IntervalStyle: 'iso_8601',
    TimeZone: 'Asia/Kathmandu',
    extra_float_digits: '0',
    bytea_output: 'hex',
    lc_monetary: 'en_US.UTF-8',
    array_nulls: 'off',
  },
  c: {
    DateStyle: 'German, DMY',
    IntervalStyle: 'postgres_verbose',
    TimeZone: 'Pacific/Chatham',
    extra_float_digits: '1',
    bytea_output: 'escape',
    lc_monetary: 'ja_JP.UTF-8',
    xmloption: 'document',
  },
};

const COLUMNS = `
  id int PRIMARY KEY,
  n numeric, n_scaled numeric(30, 10), f4 real, f8 double precision, m money,
  i2 smallint, i4 int, i8 bigint, b bool, u uuid, ch char(5), vc varchar(10), txt text, qc "char",
  d date, t time, tt timetz, ts timestamp, tstz timestamptz, iv interval,
  by bytea, js json, jb jsonb,
  a_int int[], a_txt text[], a_ts timestamptz[], a_f8 float8[],
  mood fid.mood, a_mood fid.mood[], dom fid.posint, comp fid.complex,
  r_int int4range, r_ts tstzrange, r_d daterange, r_num numrange, mr_int int4multirange, mr_ts tstzmultirange,
  ip inet, cid cidr, mac macaddr, mac8 macaddr8, bt bit(8), vb varbit,
  tsv tsvector, tsq tsquery,
  pt point, ln line, ls lseg, bx box, ph path, pg polygon, ci circle,
  x xml, big text`;

const DDL = `
  CREATE SCHEMA fid;
  CREATE TYPE fid.mood AS ENUM ('sad', 'ok', 'happy ''quoted''');
  CREATE DOMAIN fid.posint AS int CHECK (VALUE > 0);
  CREATE TYPE fid.complex AS (re float8, im float8, label text, mood fid.mood, at timestamptz);
  CREATE TABLE fid.t (${COLUMNS});
  CREATE TABLE fid.ref (${COLUMNS});`;

/** One row of values per kind of trouble, written as SQL expressions (ids are added). */
const ROWS: string[] = [
  // NaN, infinities, -0, huge and scaled numerics, µs, BC, infinity timestamps.
  `'NaN', 1.5000000000, 'NaN', 'NaN', '-1234.56'::numeric::money,
   -32768, -2147483648, -9223372036854775808, true, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'ab', 'x y', E'tab\\tnew\\nline \\\\ "q" ''s'' é ✓', 'z',
   '4713-01-01 BC', '24:00:00', '23:59:59.999999+15:59', '294276-12-31 23:59:59.999999', '4713-01-01 00:00:00+00 BC', '-178000000 years -3 days -00:00:00.000001',
   '\\x00ff5c27226e', '{"b" : 1,  "a": [1, 2.50, 1e3], "a": null}', '{"b": 1, "a": [1, 2.50, 1e3]}',
   ARRAY[ARRAY[1,2],ARRAY[3,NULL]], ARRAY['NULL', NULL, '', 'a"b', 'c,d', '{}'], ARRAY['2024-06-01 09:30:00.123456+00'::timestamptz, 'infinity'], ARRAY['-0'::float8, 'Infinity', '-Infinity', 1e-310],
   'happy ''quoted''', ARRAY['sad', NULL, 'happy ''quoted''']::fid.mood[], 1, ROW('-0'::float8, 1.0000000000000002, 'l"a,b', 'ok', '2024-06-01 09:30:00.5+05:45')::fid.complex,
   '[1,10)', '[2024-06-01 09:30:00.123456+00,infinity)', '[-infinity,2024-06-01)', '(0.1,0.30000000000000004]', '{[1,3),[5,7)}', '{[2024-01-01 00:00:00+14,2024-01-02 00:00:00-12)}',
   '2001:db8::1/64', '10.1.0.0/16', '08:00:2b:01:02:03', '08:00:2b:01:02:03:04:05', B'10100101', B'1',
   'a fat cat sat:2A on the mat', 'fat & (rat | !cat)',
   '(0.1,-0)', '{1,-1,0.3333333333333333}', '[(0.1,0.2),(0.30000000000000004,-0)]', '((1e-300,1e300),(0,0))', '[(0,0),(1,1),(2,0)]', '((0,0),(1,1),(2,0.5))', '<(0.1,0.2),0.7>',
   XMLPARSE(CONTENT 'a<b c="1"/>text'), NULL`,
  // The other ends: positive infinities, max values, empty things, µs and odd offsets.
  `repeat('9', 1000)::numeric, -0.0000000001, '-0', '-0', '92233720368547.75'::numeric::money,
   32767, 2147483647, 9223372036854775807, false, '00000000-0000-0000-0000-000000000000', '', '', '', E'\\\\',
   'infinity', '00:00:00', '00:00:00-15:59', '-infinity', 'infinity', '1 mon 30 days 24:00:00',
   '\\x', '[]', '{}',
   '{}', '{}', '{}', '{}',
   'sad', '{}', 2147483647, ROW('NaN', 'Infinity', '', 'sad', 'infinity')::fid.complex,
   'empty', 'empty', '(,)', 'empty', '{}', '{}',
   '::ffff:1.2.3.4', '::/0', 'ff:ff:ff:ff:ff:ff', 'ff:ff:ff:ff:ff:ff:ff:ff', B'00000000', B'',
   '', '',
   '(1e-310,1.7976931348623157e308)', '{0,1,0}', '[(0,0),(0,0)]', '((0,0),(0,0))', '((0,0))', '((0,0))', '<(0,0),0>',
   XMLPARSE(DOCUMENT '<!DOCTYPE d><d>doc</d>'), NULL`,
  // Ordinary values with µs, DST edges and non-ASCII.
  `'0.1'::numeric + '0.2', 3.1415926535, 3.4028235e38, 0.1, 0,
   0, 42, 42, null, 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A12', 'abcde', 'ñandú', '日本語 ✓ 🐘', NULL,
   '2024-02-29', '12:34:56.000001', '12:34:56.000001+05:45', '2024-03-31 02:30:00.000001', '2024-10-27 01:30:00.999999+01', '1 year 2 mons 3 days 04:05:06.789',
   NULL, 'null', 'null',
   NULL, ARRAY[NULL]::text[], NULL, ARRAY[0.1, 0.2, 0.30000000000000004],
   NULL, NULL, NULL, NULL,
   '[1,1]', '(2024-03-31 01:59:59.999999+00,2024-03-31 03:00:00+00]', '[2024-02-29,2024-03-01]', NULL, '{}', NULL,
   '192.168.0.1', '192.168.0.0/24', NULL, NULL, NULL, NULL,
   NULL, NULL,
   NULL, NULL, NULL, NULL, NULL, NULL, NULL,
   NULL, NULL`,
];

/** Column names: the first word of each comma-separated entry (commas inside parentheses excluded). */
const NAMES = COLUMNS.split(/,(?![^(]*\))/)
  .map((c) => c.trim().split(/\s+/)[0] as string)
  .filter(Boolean);

/** A session with fixed, sane settings for comparing. */
async function comparer(node: SandboxNode): Promise<pg.Client> {
  const c = new pg.Client({
    ...node.facts(),
    options:
      '-c DateStyle=ISO,YMD -c IntervalStyle=postgres -c TimeZone=UTC -c extra_float_digits=3 -c bytea_output=hex -c lc_monetary=C',
  });
  c.on('error', () => {});
  await c.connect();
  return c;
}

/**
 * Each column of each row as a string: the hex of its binary send form when that holds no
 * OID local to the node (built-in scalars and arrays of them), else its text.
 */
async function image(
  node: SandboxNode,
  table: string,
  where: string,
): Promise<Map<number, Record<string, string>>> {
  const c = await comparer(node);
  try {
    const { rows: cols } = await c.query(
      `SELECT a.attname AS name, t.typsend::text AS send,
              (a.atttypid < 16384 AND t.typtype = 'b' AND (t.typelem = 0 OR t.typelem < 16384)) AS binary
         FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
        WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
      [table],
    );
    const exprs = cols.map((col: { name: string; send: string; binary: boolean }) =>
      col.binary
        ? `coalesce(encode(${col.send}(${pg.escapeIdentifier(col.name)}), 'hex'), 'NULL')`
        : `coalesce(${pg.escapeIdentifier(col.name)}::text, 'NULL')`,
    );
    const { rows } = await c.query({
      text: `SELECT id, ${exprs.join(', ')} FROM ${table} WHERE ${where} ORDER BY id`,
      rowMode: 'array',
    });
    const out = new Map<number, Record<string, string>>();
    for (const r of rows as Array<[number, ...string[]]>) {
      const rec: Record<string, string> = {};
      cols.forEach((col: { name: string }, i: number) => {
        rec[col.name] = r[i + 1] as string;
      });
      out.set(r[0], rec);
    }
    return out;
  } finally {
    await c.end();
  }
}

describe("multimaster: values arrive exactly whatever each database's settings", () => {
  let sb: Sandbox;
  let nodes: SandboxNode[];
  let config: ResolvedConfig;
  let rep: ReplicatorHandle;
  let dir: string;
  const logs = captureLogs();
  const base: Record<string, number> = { a: 0, b: 1000, c: 2000 };

  beforeAll(async () => {
    ({ sb, nodes } = await startNodes(['a', 'b', 'c']));
    for (const n of nodes) {
      const locales = await n
        .query<{ ok: boolean }>(
          `SELECT bool_and(pg_catalog.set_config('lc_monetary', l, true) IS NOT NULL) AS ok FROM unnest(ARRAY['de_DE.UTF-8', 'en_US.UTF-8', 'ja_JP.UTF-8']) l`,
        )
        .catch((err: Error) => {
          throw new Error(
            `the fidelity test needs the de_DE.UTF-8, en_US.UTF-8 and ja_JP.UTF-8 locales (.ci/run generates them): ${err.message}`,
          );
        });
      expect(locales[0]?.ok).toBe(true);
      const db = n.facts().database;
      for (const [k, v] of Object.entries(NODE_DEFAULTS[n.name] ?? {}))
        await n.query(`ALTER DATABASE ${pg.escapeIdentifier(db)} SET ${k} = ${pg.escapeLiteral(v)}`);
    }
    await onAll(nodes, DDL);
    config = meshConfig(nodes, { tables: ['fid.t'] });
    rep = await initAndStart(config, logs.logger);
    dir = mkdtempSync(join(tmpdir(), 'pgfleet-mm-fid-'));
  });

  afterAll(async () => {
    await rep?.stop();
    await sb?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("every row written on each node, with that node's defaults, equals its reference copy on every other node", async () => {
    for (const n of nodes) {
      // Written in a session with the node's own database defaults, as an application would.
      const k = base[n.name] as number;
      const values = ROWS.map((r, i) => `(${k + i + 1}, ${r})`).join(',\n');
      await n.query(
        `BEGIN;
         INSERT INTO fid.t (${NAMES.join(', ')}) VALUES ${values};
         UPDATE fid.t SET big = (SELECT string_agg(md5(g::text || '${n.name}'), '') FROM generate_series(1, 32768) g) WHERE id = ${k + 1};
         INSERT INTO fid.ref SELECT * FROM fid.t WHERE id > ${k} AND id <= ${k + 999};
         COMMIT`,
      );
    }
    await quiesce(nodes);
    // Later changes: an update of another column of the row with a 1 MB TOASTed value (sent
    // as unchanged TOAST), an update of a timestamp and a float, a delete; same on the reference.
    for (const n of nodes) {
      const k = base[n.name] as number;
      for (const t of ['fid.t', 'fid.ref']) {
        await n.query(
          `UPDATE ${t} SET i4 = i4 + 1, tstz = tstz + interval '1 microsecond' WHERE id = ${k + 1};
           UPDATE ${t} SET f8 = 0.30000000000000004, iv = '-1 mon 1 day' WHERE id = ${k + 3};
           DELETE FROM ${t} WHERE id = ${k + 2}`,
        );
      }
    }
    await quiesce(nodes);

    const mismatches: string[] = [];
    for (const src of nodes) {
      const k = base[src.name] as number;
      const where = `id > ${k} AND id <= ${k + 999}`;
      const ref = await image(src, 'fid.ref', where);
      expect(ref.size).toBe(ROWS.length - 1);
      expect((ref.get(k + 1)?.big?.length ?? 0) >= 2 * 1024 * 1024).toBe(true); // hex of 1 MiB
      for (const dst of nodes) {
        const got = await image(dst, 'fid.t', where);
        expect([...got.keys()], `${src.name} -> ${dst.name}`).toEqual([...ref.keys()]);
        for (const [id, want] of ref) {
          for (const col of NAMES) {
            if (got.get(id)?.[col] !== want[col])
              mismatches.push(
                `${src.name} -> ${dst.name} id ${id} ${col}: ${want[col]?.slice(0, 80)} became ${got.get(id)?.[col]?.slice(0, 80)}`,
              );
          }
        }
      }
    }
    expect(mismatches).toEqual([]);
  });

  it('check finds the tables equal although every database renders values differently', async () => {
    const [t] = await checkTables(config, ['fid.t']);
    expect(t?.equal).toBe(true);
    expect(new Set(Object.values(t?.nodes ?? {}).map((v) => v?.rows))).toEqual(
      new Set([(ROWS.length - 1) * 3]),
    );
    // The CLI too, with the password kept in a password file: no pgpass deprecation warning.
    const pgpass = join(dir, 'pgpass');
    writePgpass(pgpass, nodes);
    const cfg = join(dir, 'mesh.yaml');
    writeFileSync(
      cfg,
      [
        'nodes:',
        ...nodes.map((n) => {
          const f = n.facts();
          return `  - { name: ${n.name}, conninfo: "host=${f.host} port=${f.port} user=${f.user} dbname=${f.database}" }`;
        }),
        'tables: [fid.t]',
      ].join('\n'),
    );
    const res = await pgfleetMm(['check', '-c', cfg], { PGPASSFILE: pgpass, PGPASSWORD: undefined });
    expect(res.stderr).not.toMatch(/deprecat/i);
    expect(res.code, res.stdout + res.stderr).toBe(0);
    expect(res.stdout).toMatch(/^OK +fid\.t /m);
  });
});
