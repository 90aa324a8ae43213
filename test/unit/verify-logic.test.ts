import { describe, expect, it } from 'vitest';
import { formatStatus, partitionLags, type StatusReport } from '../../src/status.js';
import { formatVerify } from '../../src/verify-format.js';
import { compareRange, emptyTally, rangeStart, sumsEqual, toSums, type VerifyReport } from '../../src/verify.js';

const pg = (...ids: Array<number | [number, boolean]>) => ids.map((x) => (Array.isArray(x) ? { id: x[0], sent: x[1] } : { id: x, sent: true }));
const ch = (...ids: Array<number | [number, number]>) => ids.map((x) => (Array.isArray(x) ? { id: x[0], copies: x[1] } : { id: x, copies: 1 }));

describe('compareRange', () => {
  it('finds nothing when both sides hold the same ids once', () => {
    const t = emptyTally();
    compareRange(pg(1, 2, 5), ch(1, 2, 5), t, 10);
    expect(t).toEqual(emptyTally());
  });

  it('tells missing (sent), not yet sent, duplicated and extra ids apart', () => {
    const t = emptyTally();
    compareRange(pg(1, 2, [3, false], 4, 7, [9, false]), ch(1, [2, 3], 5, 6, 7, [8, 2]), t, 10);
    expect(t).toEqual({
      missing: 1,
      missingExamples: [4],
      deadLettered: 0,
      deadLetteredExamples: [],
      notYetSent: 2,
      notYetSentExamples: [3, 9],
      duplicated: 2,
      duplicatedExamples: [2, 8],
      extra: 3,
      extraExamples: [5, 6, 8],
    });
  });

  it('a sent row ClickHouse lacks because the consumer dead-lettered it is dead-lettered, not missing', () => {
    const t = emptyTally();
    compareRange(pg(1, 2, 3, [4, false]), ch(1), t, 10, new Set([2, 4, 99]));
    expect([t.missing, t.missingExamples, t.deadLettered, t.deadLetteredExamples, t.notYetSent]).toEqual([1, [3], 1, [2], 1]);
  });

  it('a pending row that ClickHouse already has (re-sent) is no difference', () => {
    const t = emptyTally();
    compareRange(pg([1, false]), ch(1), t, 10);
    expect(t).toEqual(emptyTally());
  });

  it('handles one side empty', () => {
    const a = emptyTally();
    compareRange(pg(1, 2), [], a, 10);
    expect([a.missing, a.extra]).toEqual([2, 0]);
    const b = emptyTally();
    compareRange([], ch(1, [2, 2]), b, 10);
    expect([b.missing, b.extra, b.duplicated]).toEqual([0, 2, 1]);
  });

  it('keeps at most `examples` ids per kind but counts them all, across ranges', () => {
    const t = emptyTally();
    compareRange(pg(1, 2, 3), [], t, 2);
    compareRange(pg(10, 11), [], t, 2);
    expect(t.missing).toBe(5);
    expect(t.missingExamples).toEqual([1, 2]);
  });
});

describe('range aggregates', () => {
  it('reduces sums modulo 2^64 so that PostgreSQL exact sums equal ClickHouse wrapped ones', () => {
    const big = (2n ** 64n + 5n).toString();
    expect(sumsEqual(toSums('2', big, '7'), toSums('2', '5', '7'))).toBe(true);
  });

  it('differs on count, Σ id or Σ id², and when one side has no rows', () => {
    const a = toSums('2', '5', '13'); // {2, 3}
    expect(sumsEqual(a, toSums('2', '5', '17'))).toBe(false); // {1, 4}: same count and sum
    expect(sumsEqual(a, toSums('3', '5', '13'))).toBe(false);
    expect(sumsEqual(a, undefined)).toBe(false);
    expect(sumsEqual(undefined, undefined)).toBe(true);
  });

  it('aligns an id to the start of its range', () => {
    expect(rangeStart(0, 100)).toBe(0);
    expect(rangeStart(99, 100)).toBe(0);
    expect(rangeStart(100, 100)).toBe(100);
    expect(rangeStart(123_456_789, 100_000)).toBe(123_400_000);
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
  const report: VerifyReport = {
    postgresRows: 1_000_000,
    clickhouseRows: 999_999,
    pending: 0,
    failed: 0,
    missing: 12,
    deadLettered: 0,
    deadLetteredExamples: [],
    notYetSent: 0,
    duplicated: 0,
    extra: 0,
    missingExamples: [1, 2, 3],
    notYetSentExamples: [],
    duplicatedExamples: [],
    extraExamples: [],
    rangeSize: 100_000,
    rangesChecked: 10,
    rangesDiffering: 1,
    ok: false,
  };

  it('formatVerify gives the verdict and the example ids', () => {
    const text = formatVerify(report);
    expect(text.split('\n')[0]).toBe('FAILED: ClickHouse differs from PostgreSQL.');
    expect(text).toContain('missing              12 — e.g. 1, 2, 3, …');
    expect(text).toContain('PostgreSQL rows      1,000,000');
    expect(formatVerify({ ...report, ok: true, missing: 0, missingExamples: [] }).split('\n')[0]).toMatch(/^OK:/);
  });

  it('formatStatus prints one aligned line per partition and the missing table', () => {
    const s: StatusReport = {
      ok: true,
      postgres: { pending: 3, failed: 1, total: 1200, error: null },
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
      clickhouse: { database: 'default', rows: 0, deadLetters: 0, tableExists: false, note: 'table default.user_login does not exist — run "streamer migrate"', error: null },
    };
    expect(formatStatus(s)).toBe(
      [
        'PostgreSQL  user_login: 1,200 rows, 3 pending, 1 failed',
        'Kafka       topic user_event, group streamer-clickhouse: lag 12,348',
        '            partition  committed   high     lag',
        '                    0          2      5       3',
        '                    1          -  12345  12,345',
        'ClickHouse  default.user_login: missing — table default.user_login does not exist — run "streamer migrate"',
      ].join('\n'),
    );
  });
});
