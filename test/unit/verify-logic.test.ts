import { describe, expect, it } from 'vitest';
import { formatStatus, partitionLags, type StatusReport, type TableStatus } from '../../src/ops/status.js';
import { formatVerify } from '../../src/ops/verify-format.js';
import { compareBucket, displayKey, emptyCounts, sumsEqual, verifyPlan, type KeyRow, type TableReport, type VerifyReport } from '../../src/ops/verify.js';
import { spec } from './support/specs.js';

/** A canonical key as canonicalPair builds it: `<bytes>:<text>` per column, '-' for NULL. */
const canon = (...parts: Array<string | null>) => parts.map((p) => (p === null ? '-' : `${Buffer.byteLength(p)}:${p}`)).join('');
const rows = (...pairs: Array<[string, string]>): KeyRow[] => pairs.map(([k, hash]) => ({ key: canon(k), hash }));
const none = { pending: new Set<string>(), dead: new Set<string>() };

describe('compareBucket', () => {
  it('finds nothing when both sides hold the same keys with the same content', () => {
    const into = emptyCounts();
    compareBucket(rows(['1', 'a'], ['2', 'b']), rows(['2', 'b'], ['1', 'a']), none, into, 10);
    expect(into).toEqual(emptyCounts());
  });

  it('tells missing, stale (other content) and deleted-but-present keys apart', () => {
    const into = emptyCounts();
    compareBucket(rows(['1', 'a'], ['2', 'b'], ['3', 'c']), rows(['1', 'a'], ['2', 'OLD'], ['9', 'z']), none, into, 10);
    expect([into.missing, into.stale, into.deletedButPresent]).toEqual([1, 1, 1]);
    expect(into.examples).toMatchObject({ missing: ['3'], stale: ['2'], deletedButPresent: ['9'] });
  });

  it('a difference on a key with a change not yet published is "not yet sent"; one the consumer refused is "dead-lettered"', () => {
    const into = emptyCounts();
    const facts = { pending: new Set([canon('2'), canon('9')]), dead: new Set([canon('3')]) };
    compareBucket(rows(['1', 'a'], ['2', 'b'], ['3', 'c']), rows(['1', 'a'], ['2', 'OLD'], ['9', 'z']), facts, into, 10);
    expect([into.missing, into.stale, into.deletedButPresent, into.notYetSent, into.deadLettered]).toEqual([0, 0, 0, 2, 1]);
    expect(into.examples.notYetSent.sort()).toEqual(['2', '9']);
    expect(into.examples.deadLettered).toEqual(['3']);
  });

  it('keeps at most `examples` keys per kind but counts them all, across buckets', () => {
    const into = emptyCounts();
    compareBucket(rows(['1', 'a'], ['2', 'a'], ['3', 'a']), [], none, into, 2);
    compareBucket(rows(['10', 'a']), [], none, into, 2);
    expect(into.missing).toBe(4);
    expect(into.examples.missing).toEqual(['1', '2']);
  });
});

describe('displayKey', () => {
  it('prints a composite key as its values, NULL for NULL, and survives commas and multi-byte text inside values', () => {
    expect(displayKey(canon('42'))).toBe('42');
    expect(displayKey(canon('7', '2024-01-01'))).toBe('(7, 2024-01-01)');
    expect(displayKey(canon('a:b', null, 'zoë 🚀'))).toBe('(a:b, NULL, zoë 🚀)');
    expect(displayKey(canon('3:x'))).toBe('3:x');
  });
});

describe('bucket sums', () => {
  it('equal only when count and sum both agree; a bucket one side lacks differs', () => {
    expect(sumsEqual({ count: 2n, sum: 5n }, { count: 2n, sum: 5n })).toBe(true);
    expect(sumsEqual({ count: 2n, sum: 5n }, { count: 2n, sum: 6n })).toBe(false);
    expect(sumsEqual({ count: 2n, sum: 5n }, { count: 3n, sum: 5n })).toBe(false);
    expect(sumsEqual({ count: 2n, sum: 5n }, undefined)).toBe(false);
    expect(sumsEqual(undefined, undefined)).toBe(true);
  });
});

describe('verifyPlan', () => {
  const userLogin = spec('public', 'user_login', [
    ['id', 'int4', { notNull: true }],
    ['username', 'text'],
    ['event_time', 'timestamp'],
  ]);
  const chTypes = new Map([
    ['id', 'Int32'],
    ['username', 'Nullable(String)'],
    ['event_time', "Nullable(DateTime('UTC'))"],
  ]);

  it('buckets a one-column integer key by ranges, hashes every column on both sides', () => {
    const p = verifyPlan(userLogin, 'db', chTypes);
    expect(p.integerKey).toBe('id');
    expect(p.chTable).toBe('`db`.`user_login`');
    for (const col of ['"id"', '"username"', '"event_time"']) expect(p.pgHash).toContain(col);
    for (const col of ['`id`', '`username`', '`event_time`']) expect(p.chHash).toContain(col);
  });

  it('uses hash buckets for a composite or non-integer key', () => {
    const s = spec('Sales', 'Order Lines', [
      ['Order', 'int8', { notNull: true }],
      ['line', 'text', { notNull: true }],
    ], { key: ['Order', 'line'] });
    const p = verifyPlan(s, 'db', new Map([['Order', 'Int64'], ['line', 'String']]));
    expect(p.integerKey).toBeNull();
    expect(p.pgKey).toMatch(/^concat\(/);
  });

  it('refuses, naming the column, when ClickHouse lacks a column', () => {
    expect(() => verifyPlan(userLogin, 'db', new Map([['id', 'Int32']]))).toThrow('ClickHouse table db.user_login has no column username — run "streamer migrate"');
  });
});

describe('partitionLags', () => {
  it('is high − committed, high − low when nothing is committed, and never counts deleted messages', () => {
    const r = partitionLags(
      [
        { partition: 1, high: '3', low: '0' },
        { partition: 0, high: '5', low: '0' },
        { partition: 2, high: '10', low: '8' },
        { partition: 3, high: '0', low: '0' },
      ],
      [
        { partition: 0, offset: '2' },
        { partition: 1, offset: '-1' },
        { partition: 2, offset: '4' },
      ],
    );
    expect(r.partitions).toEqual([
      { partition: 0, committed: '2', high: '5', lag: 3 },
      { partition: 1, committed: null, high: '3', lag: 3 },
      { partition: 2, committed: '4', high: '10', lag: 2 },
      { partition: 3, committed: null, high: '0', lag: 0 },
    ]);
    expect(r.totalLag).toBe(8);
  });
});

describe('formatters', () => {
  const table: TableReport = {
    table: 'public.user_login',
    clickhouseTable: 'default.user_login',
    postgresRows: 1_000_000,
    clickhouseRows: 999_998,
    clickhouseStoredRows: 1_200_000,
    ...emptyCounts(),
    buckets: 10,
    bucketsDiffering: 1,
    shapeChange: null,
    ok: false,
  };
  table.missing = 12;
  table.examples.missing = ['1', '2', '3'];
  table.stale = 1;
  table.examples.stale = ['7'];
  const report: VerifyReport = {
    tables: [table],
    postgresRows: 1_000_000,
    clickhouseRows: 999_998,
    missing: 12,
    stale: 1,
    deletedButPresent: 0,
    duplicated: 0,
    notYetSent: 0,
    deadLettered: 0,
    missingExamples: ['1', '2', '3'],
    duplicatedExamples: [],
    ok: false,
  };

  it('formatVerify gives the verdict, each table and its example keys', () => {
    const text = formatVerify(report).split('\n');
    expect(text[0]).toBe('FAILED: ClickHouse differs from PostgreSQL.');
    expect(text).toContain('  FAILED public.user_login → default.user_login');
    expect(text).toContain('    PostgreSQL rows       1,000,000');
    expect(text).toContain('    missing               12 — e.g. 1, 2, 3, …');
    expect(text).toContain('    stale                 1 — e.g. 7 (other values than PostgreSQL: an older version)');
    expect(text).toContain('    compared by content hash in 10 ranges of keys; 1 differed and was compared key by key');
    expect(formatVerify({ ...report, ok: true, tables: [{ ...table, ok: true }] }).split('\n')[0]).toMatch(/^OK:/);
    // A table changed since migrate: nothing compared, the message instead.
    const changed = { ...table, shapeChange: 'public.user_login changed since "streamer migrate" … — run "streamer migrate"' };
    expect(formatVerify({ ...report, tables: [changed] }).split('\n').slice(1)).toEqual([
      '  FAILED public.user_login → default.user_login',
      '    public.user_login changed since "streamer migrate" … — run "streamer migrate"',
    ]);
  });

  it('formatStatus prints one block per table, the partitions aligned, and a missing ClickHouse table', () => {
    const t: TableStatus = {
      table: 'public.user_login',
      clickhouseTable: 'default.user_login',
      postgres: { pending: 3, failed: 1, total: 1200, error: null, note: null },
      kafka: {
        topic: 'user_event',
        group: 'streamer-clickhouse',
        topicExists: true,
        partitions: [
          { partition: 0, committed: '2', high: '5', lag: 3 },
          { partition: 1, committed: null, high: '12345', lag: 12345 },
        ],
        totalLag: 12348,
        error: null,
      },
      clickhouse: { database: 'default', rows: 0, deadLetters: 0, tableExists: false, note: 'run "streamer migrate"', error: null },
    };
    const s: StatusReport = { ok: true, postgres: t.postgres, kafka: t.kafka, clickhouse: t.clickhouse, tables: [t] };
    expect(formatStatus(s)).toBe(
      [
        'public.user_login',
        '  PostgreSQL  1,200 rows, 3 pending, 1 failed',
        '  Kafka       topic user_event, group streamer-clickhouse: lag 12,348',
        '              partition  committed   high     lag',
        '                      0          2      5       3',
        '                      1          -  12345  12,345',
        '  ClickHouse  default.user_login: missing — run "streamer migrate"',
      ].join('\n'),
    );
  });
});
