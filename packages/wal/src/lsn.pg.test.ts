import { connect } from '@pgfleet/connection';
import { testServer } from '@pgfleet/sandbox/vitest';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatLsn, isValidLsn, type Lsn, lsnDiff, parseLsn } from './lsn.js';
import { parseWalSegmentName, walSegmentName, walSegmentOffset } from './segment.js';

// Cross-checks the pure LSN and segment math against the server's own implementation.

let client: pg.Client;
let timeline: number;
let segmentSize: number;

beforeAll(async () => {
  client = await connect(testServer().conninfo, { applicationName: 'wal-lsn-test' });
  const tl = await client.query('SELECT timeline_id FROM pg_control_checkpoint()');
  timeline = Number(tl.rows[0].timeline_id);
  const seg = await client.query("SELECT setting FROM pg_settings WHERE name = 'wal_segment_size'");
  segmentSize = Number(seg.rows[0].setting);
});

afterAll(async () => {
  await client?.end();
});

const LSNS = [
  '0/0',
  '0/1',
  '0/16B3748',
  '0/FFFFFF',
  '0/1000000',
  '0/1000001',
  '1/0',
  '16/B374D848',
  'A/FF000000',
  '7FFFFFFF/12345678',
  'FFFFFFFF/FEFFFFFF',
  'FFFFFFFF/FFFFFFFF',
];

describe('walSegmentName against the server', () => {
  const onBoundary = (lsn: Lsn) => walSegmentOffset(lsn, segmentSize) === 0;

  it('names the same file as pg_walfile_name() and pg_walfile_name_offset() inside a segment', async () => {
    const inside = LSNS.map(parseLsn).filter((lsn) => !onBoundary(lsn));
    expect(inside.length).toBeGreaterThan(5);
    for (const lsn of inside) {
      const text = formatLsn(lsn);
      const { rows } = await client.query(
        'SELECT pg_walfile_name($1::pg_lsn) AS name, o.file_name, o.file_offset FROM pg_walfile_name_offset($1::pg_lsn) o',
        [text],
      );
      const ours = walSegmentName(lsn, timeline, segmentSize);
      expect({ text, name: ours }).toEqual({ text, name: rows[0].name });
      expect({ text, name: ours }).toEqual({ text, name: rows[0].file_name });
      expect(walSegmentOffset(lsn, segmentSize)).toBe(Number(rows[0].file_offset));
    }
  });

  it('names the segment that starts at a boundary LSN (PostgreSQL < 17 names the previous one)', async () => {
    const major = testServer().major;
    const boundaries = LSNS.map(parseLsn).filter((lsn) => onBoundary(lsn) && lsn !== 0n);
    expect(boundaries.length).toBeGreaterThan(2);
    for (const lsn of boundaries) {
      const text = formatLsn(lsn);
      const { rows } = await client.query(
        'SELECT pg_walfile_name($1::pg_lsn) AS name, o.file_name FROM pg_walfile_name_offset($1::pg_lsn) o',
        [text],
      );
      const ours = walSegmentName(lsn, timeline, segmentSize);
      expect(parseWalSegmentName(ours, segmentSize).startLsn).toBe(lsn);
      // Before 17, xlogfuncs.c used XLByteToPrevSeg here: the segment holding lsn - 1.
      const server = major >= 17 ? ours : walSegmentName((lsn - 1n) as Lsn, timeline, segmentSize);
      expect({ text, name: rows[0].name, file: rows[0].file_name }).toEqual({
        text,
        name: server,
        file: server,
      });
    }
  });
});

describe('LSN parsing and math against pg_lsn', () => {
  it('formats exactly like pg_lsn output, padded or not, any case', async () => {
    const inputs = ['00000016/b374d848', '0/00000000', 'ffffffff/ffffffff', '0A/0B', '1/0', '0/16b3748'];
    for (const text of inputs) {
      const { rows } = await client.query('SELECT $1::pg_lsn::text AS out', [text]);
      expect(formatLsn(parseLsn(text))).toBe(rows[0].out);
    }
  });

  it('rejects exactly what the server rejects', async () => {
    const inputs = [
      '',
      '0',
      '0/',
      '/0',
      'G/0',
      '100000000/0',
      '0/100000000',
      '0/0/0',
      '-1/0',
      '0x1/0',
      '1/2',
    ];
    for (const text of inputs) {
      let serverAccepts = true;
      try {
        await client.query('SELECT $1::pg_lsn', [text]);
      } catch {
        serverAccepts = false;
      }
      expect({ text, accepts: isValidLsn(text) }).toEqual({ text, accepts: serverAccepts });
    }
  });

  it('computes the same byte difference as pg_wal_lsn_diff()', async () => {
    const pairs: Array<[string, string]> = [
      ['0/0', '0/0'],
      ['1/0', '0/FFFFFFFF'],
      ['0/FFFFFFFF', '1/0'],
      ['16/B374D848', '0/16B3748'],
      ['FFFFFFFF/FFFFFFFF', '0/0'],
      ['0/0', 'FFFFFFFF/FFFFFFFF'],
    ];
    for (const [a, b] of pairs) {
      const { rows } = await client.query('SELECT pg_wal_lsn_diff($1::pg_lsn, $2::pg_lsn)::text AS diff', [
        a,
        b,
      ]);
      expect(lsnDiff(parseLsn(a), parseLsn(b)).toString()).toBe(rows[0].diff);
    }
  });
});
