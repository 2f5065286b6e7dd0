import { once } from 'node:events';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { testServer } from '@pgfleet/sandbox/vitest';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, pgClientConfig, withConnection } from './connect.js';
import { formatUri, parseConninfo, withConninfo } from './conninfo.js';
import { NodeUnreachableError, PgError, type PgfleetError } from './errors.js';
import { toPgfleetError } from './map-error.js';
import { probe } from './probe.js';
import { quoteIdent, quoteLiteral, quoteQualified } from './quote.js';
import { SqlState } from './sqlstate.js';

const server = testServer();
const SCHEMA = 'pgfleet_connection_test';
const RO_USER = 'pgfleet_conn_ro';
const RO_PASSWORD = "ro pass'word";

async function rejection(p: Promise<unknown>): Promise<PgfleetError> {
  try {
    await p;
  } catch (err) {
    return toPgfleetError(err);
  }
  throw new Error('expected a rejection');
}

async function refusedPort(): Promise<number> {
  const s = net.createServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address() as net.AddressInfo;
  s.close();
  await once(s, 'close');
  return port;
}

let admin: pg.Client;

beforeAll(async () => {
  admin = await connect(server.conninfo, { applicationName: 'pgfleet-connection-test' });
  await admin.query(`DROP SCHEMA IF EXISTS ${quoteIdent(SCHEMA)} CASCADE`);
  await admin.query(`CREATE SCHEMA ${quoteIdent(SCHEMA)}`);
  await admin.query(`DROP ROLE IF EXISTS ${quoteIdent(RO_USER)}`);
  // A role whose sessions start read-only: what a fenced primary looks like to a client.
  await admin.query(`CREATE ROLE ${quoteIdent(RO_USER)} LOGIN PASSWORD ${quoteLiteral(RO_PASSWORD)}`);
  await admin.query(`ALTER ROLE ${quoteIdent(RO_USER)} SET default_transaction_read_only = on`);
});

afterAll(async () => {
  await admin.query(`DROP SCHEMA IF EXISTS ${quoteIdent(SCHEMA)} CASCADE`);
  await admin.query(`DROP ROLE IF EXISTS ${quoteIdent(RO_USER)}`);
  await admin.end();
});

describe('connect', () => {
  it("takes a missing password from the password file, without node-pg's pgpass deprecation warning", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pgfleet-pgpass-'));
    const file = join(dir, 'pgpass');
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.message);
    process.on('warning', onWarning);
    try {
      const params = parseConninfo(server.conninfo);
      const escaped = server.password.replace(/[\\:]/g, (c) => `\\${c}`);
      writeFileSync(file, `# test\n127.0.0.1:${server.port}:${params.dbname}:${params.user}:${escaped}\n`);
      chmodSync(file, 0o600);
      const noPassword = withConninfo(server.conninfo, { password: '', passfile: file });
      await withConnection(noPassword, { pgpass: { env: {} } }, async (c) => {
        expect((await c.query('SELECT 1 AS one')).rows[0].one).toBe(1);
      });
      // node-pg's own reader (what runs when config.password is unset) would warn here.
      await new Promise((r) => setImmediate(r));
      expect(warnings.filter((w) => /pgpass/i.test(w))).toEqual([]);
      // A file others can read is ignored, as libpq does: the server then refuses us.
      chmodSync(file, 0o644);
      const seen: string[] = [];
      const err = await rejection(
        connect(noPassword, { pgpass: { env: {}, onWarning: (m) => seen.push(m) } }),
      );
      expect(err.message).not.toContain(server.password);
      expect(seen).toEqual([expect.stringContaining('group or world access')]);
    } finally {
      process.off('warning', onWarning);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('starts the session with the given settings, after and over the conninfo options', async () => {
    const info = withConninfo(server.conninfo, { options: '-c DateStyle=German -c extra_float_digits=-2' });
    await withConnection(
      info,
      { settings: { DateStyle: 'ISO, YMD', extra_float_digits: '3' } },
      async (c) => {
        const { rows } = await c.query(
          "SELECT current_setting('DateStyle') AS ds, current_setting('extra_float_digits') AS efd",
        );
        expect(rows[0]).toEqual({ ds: 'ISO, YMD', efd: '3' });
      },
    );
  });

  it('pgClientConfig builds a client config with the same password lookup and settings', async () => {
    const cfg = pgClientConfig(withConninfo(server.conninfo, { password: '' }), {
      settings: { TimeZone: 'Pacific/Chatham' },
      pgpass: { env: { PGPASSWORD: server.password } },
    });
    const pg = (await import('pg')).default;
    const c = new pg.Client(cfg);
    await c.connect();
    try {
      expect((await c.query("SELECT current_setting('TimeZone') AS tz")).rows[0].tz).toBe('Pacific/Chatham');
    } finally {
      await c.end();
    }
  });

  it('connects with a key=value conninfo and sets application_name', async () => {
    await withConnection(server.conninfo, { applicationName: 'conn-test-app' }, async (c) => {
      const { rows } = await c.query('SELECT current_setting($1) AS v', ['application_name']);
      expect(rows[0].v).toBe('conn-test-app');
    });
  });

  it('connects with the same params formatted as a URI', async () => {
    const uri = formatUri(parseConninfo(server.conninfo));
    await withConnection(uri, {}, async (c) => {
      const { rows } = await c.query('SELECT current_user AS u');
      expect(rows[0].u).toBe(server.user);
    });
  });

  it('closes the session after withConnection', async () => {
    const app = `conn-close-${process.pid}`;
    const pid = await withConnection(server.conninfo, { applicationName: app }, async (c) => {
      return (await c.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
    });
    await expect
      .poll(async () => (await admin.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [pid])).rowCount)
      .toBe(0);
  });

  it('sets statement_timeout so a long query is cancelled with QUERY_CANCELED', async () => {
    const client = await connect(server.conninfo, { statementTimeoutMs: 200 });
    try {
      const started = performance.now();
      const err = await rejection(client.query('SELECT pg_sleep(5)'));
      expect(performance.now() - started).toBeLessThan(2000);
      expect(err).toBeInstanceOf(PgError);
      expect((err as PgError).sqlState).toBe(SqlState.QUERY_CANCELED);
    } finally {
      await client.end();
    }
  });

  it('maps a wrong password to PgError 28P01 without the password in the message, and does not retry it', async () => {
    const wrong = 'definitely-Wrong-pw';
    const bad = withConninfo(server.conninfo, { password: wrong });
    const started = performance.now();
    const err = await rejection(
      connect(bad, { retry: { attempts: 5, baseDelayMs: 2000, maxDelayMs: 2000 } }),
    );
    expect(performance.now() - started).toBeLessThan(1500);
    expect(err).toBeInstanceOf(PgError);
    expect((err as PgError).sqlState).toBe(SqlState.INVALID_PASSWORD);
    expect(err.message).toContain(`127.0.0.1:${server.port}`);
    expect(err.message).not.toContain(wrong);
    expect(err.message).not.toContain(server.password);
    expect(JSON.stringify(err.details)).not.toContain(wrong);
  });

  it('fails quickly with NodeUnreachableError on a refused port', async () => {
    const port = await refusedPort();
    const started = performance.now();
    const err = await rejection(connect(withConninfo(server.conninfo, { port: String(port) })));
    expect(performance.now() - started).toBeLessThan(1000);
    expect(err).toBeInstanceOf(NodeUnreachableError);
    expect(err.message).not.toContain(server.password);
  });

  it('skips a host that is down and connects to the next one', async () => {
    const down = await refusedPort();
    const multi = withConninfo(server.conninfo, {
      host: '127.0.0.1,127.0.0.1',
      port: `${down},${server.port}`,
    });
    const client = await connect(multi, { connectTimeoutMs: 2000 });
    try {
      expect((await client.query('SELECT 1 AS one')).rows[0].one).toBe(1);
    } finally {
      await client.end();
    }
  });

  it('skips a host that does not answer at all (black hole) within connectTimeoutMs', async () => {
    const hole = net.createServer((s) => s.resume());
    hole.listen(0, '127.0.0.1');
    await once(hole, 'listening');
    try {
      const holePort = (hole.address() as net.AddressInfo).port;
      const uri = `postgresql://${server.user}:${server.password}@127.0.0.1:${holePort},127.0.0.1:${server.port}/${server.database}`;
      const started = performance.now();
      const client = await connect(uri, { connectTimeoutMs: 300 });
      expect(performance.now() - started).toBeLessThan(2000);
      await client.end();
    } finally {
      hole.close();
    }
  });

  it('honours target_session_attrs=read-write: a read-only session is refused, the next host is used', async () => {
    const ro = withConninfo(server.conninfo, { user: RO_USER, password: RO_PASSWORD });
    const err = await rejection(connect(withConninfo(ro, { target_session_attrs: 'read-write' })));
    expect(err.code).toBe('TARGET_SESSION_ATTRS_MISMATCH');
    expect(err.message).toMatch(/read-only primary/);
    expect(err.message).not.toContain(RO_PASSWORD);

    const readOnly = await connect(withConninfo(ro, { target_session_attrs: 'read-only' }));
    expect((await readOnly.query('SHOW transaction_read_only')).rows[0].transaction_read_only).toBe('on');
    await readOnly.end();

    const rw = await connect(withConninfo(server.conninfo, { target_session_attrs: 'read-write' }));
    expect((await rw.query('SHOW transaction_read_only')).rows[0].transaction_read_only).toBe('off');
    await rw.end();

    const primary = await connect(withConninfo(ro, { target_session_attrs: 'primary' }));
    await primary.end();
  });

  it('sslmode=prefer falls back to plain text on a server without TLS; sslmode=require refuses', async () => {
    await withConnection(withConninfo(server.conninfo, { sslmode: 'prefer' }), {}, async (c) => {
      expect((await c.query('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()')).rows[0].ssl).toBe(
        false,
      );
    });
    const err = await rejection(connect(withConninfo(server.conninfo, { sslmode: 'require' })));
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.details.key).toBe('sslmode');
  });

  it('opens a logical replication-mode session that runs IDENTIFY_SYSTEM', async () => {
    const client = await connect(server.conninfo, { replication: 'database' });
    try {
      const { rows } = await client.query('IDENTIFY_SYSTEM');
      expect(rows[0].systemid).toMatch(/^\d+$/);
      expect(rows[0].dbname).toBe(server.database);
    } finally {
      await client.end();
    }
  });

  it('opens a physical replication-mode session (replication=true in the conninfo)', async () => {
    const client = await connect(withConninfo(server.conninfo, { replication: 'true' }));
    try {
      const { rows } = await client.query('IDENTIFY_SYSTEM');
      expect(rows[0].timeline).toBeDefined();
      expect(rows[0].dbname).toBeNull();
    } finally {
      await client.end();
    }
  });
});

describe('probe', () => {
  it('reports ok with a latency for a live server', async () => {
    const res = await probe(server.conninfo, { timeoutMs: 5000 });
    expect(res).toMatchObject({ ok: true });
    expect(res.latencyMs).toBeGreaterThan(0);
  });

  it('reports a wrong password as a PgError, not as unreachable', async () => {
    const res = await probe(withConninfo(server.conninfo, { password: 'nope' }), { timeoutMs: 5000 });
    expect(res.ok).toBe(false);
    if (!res.ok) expect(res.error).toBeInstanceOf(PgError);
  });
});

describe('quoting against the server', () => {
  const names = ['Mixed Case', 'has"quote', 'données', '表 テーブル', 'select', 'a.b', "it's", 'x"";--'];

  it.each(names)('CREATE TABLE %j with quoteIdent round-trips the exact name', async (name) => {
    const table = quoteQualified(SCHEMA, name);
    const column = quoteIdent(`${name} col`);
    await admin.query(`CREATE TABLE ${table} (${column} text)`);
    await admin.query(`INSERT INTO ${table} (${column}) VALUES ($1)`, [name]);
    const { rows } = await admin.query(
      `SELECT c.relname, a.attname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = 1
        WHERE n.nspname = $1 AND c.relname = $2`,
      [SCHEMA, name],
    );
    expect(rows).toEqual([{ relname: name, attname: `${name} col` }]);
    expect((await admin.query(`SELECT ${column} AS v FROM ${table}`)).rows[0].v).toBe(name);
  });

  const literals = ['plain', "it's", 'back\\slash', "mix'\\'d", 'ünïcödé ✓', '', '\\'];
  it.each(['on', 'off'])('quoteLiteral round-trips with standard_conforming_strings=%s', async (scs) => {
    await withConnection(server.conninfo, {}, async (c) => {
      await c.query(`SET standard_conforming_strings = ${scs}`);
      for (const value of literals) {
        const { rows } = await c.query(`SELECT ${quoteLiteral(value)}::text AS v`);
        expect(rows[0].v).toBe(value);
      }
    });
  });
});

describe('toPgfleetError on real server errors', () => {
  it('maps a unique violation with its constraint', async () => {
    const t = quoteQualified(SCHEMA, 'uniq');
    await admin.query(`CREATE TABLE ${t} (id int PRIMARY KEY)`);
    await admin.query(`INSERT INTO ${t} VALUES (1)`);
    const err = await rejection(admin.query(`INSERT INTO ${t} VALUES (1)`));
    expect(err).toBeInstanceOf(PgError);
    expect((err as PgError).sqlState).toBe(SqlState.UNIQUE_VIOLATION);
    expect(err.details.constraint).toBe('uniq_pkey');
  });

  it('maps a terminated backend (57P01) to NodeUnreachableError', async () => {
    const client = await connect(server.conninfo);
    const pid = (await client.query('SELECT pg_backend_pid() AS pid')).rows[0].pid;
    await admin.query('SELECT pg_terminate_backend($1)', [pid]);
    const err = await rejection(client.query('SELECT 1'));
    expect(err).toBeInstanceOf(NodeUnreachableError);
    await client.end().catch(() => {});
  });
});
