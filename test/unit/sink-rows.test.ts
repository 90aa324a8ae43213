import { describe, expect, it } from 'vitest';
import type { EventTimeType } from '../../src/clickhouse.js';
import { firstOfEachId, formatEventTime, idConditions, toClickHouseRow } from '../../src/sink.js';

const DT: EventTimeType = { kind: 'DateTime' };
const DT64: EventTimeType = { kind: 'DateTime64', scale: 6 };

describe('event_time for the column type', () => {
  it('drops the fraction for DateTime (18.16 fails a whole insert on one) and keeps it for DateTime64', () => {
    expect(formatEventTime('2024-02-29 23:59:59.999999', DT)).toEqual({ ok: true, value: '2024-02-29 23:59:59' });
    expect(formatEventTime('2024-02-29 23:59:59.999999', DT64)).toEqual({ ok: true, value: '2024-02-29 23:59:59.999999' });
    expect(formatEventTime('2024-02-29T23:59:59.5', DT64)).toEqual({ ok: true, value: '2024-02-29 23:59:59.500000' });
    expect(formatEventTime('2024-02-29 23:59:59.123456', { kind: 'DateTime64', scale: 3 })).toEqual({ ok: true, value: '2024-02-29 23:59:59.123' });
    expect(formatEventTime(null, DT)).toEqual({ ok: true, value: null });
  });

  it.each([
    ['1970-01-01 00:00:00', true],
    ['2105-12-31 23:59:59.999999', true],
    ['1969-12-31 23:59:59', false],
    ['1901-01-01 00:00:00', false],
    ['2106-01-01 00:00:00', false],
    ['2299-12-31 23:59:59', false],
  ])('DateTime stores %s: %s (18.16 would corrupt it silently)', (t, ok) => {
    expect(formatEventTime(t, DT).ok).toBe(ok);
  });

  it.each([
    ['1900-01-01 00:00:00', true],
    ['1901-01-01 00:00:00', true],
    ['2299-12-31 23:59:59.999999', true],
    ['1899-12-31 23:59:59', false],
    ['2300-01-01 00:00:00', false],
    ['0001-01-01 00:00:00', false],
  ])('DateTime64 stores %s: %s', (t, ok) => {
    expect(formatEventTime(t, DT64).ok).toBe(ok);
  });

  it('gives a reason naming the value and the range', () => {
    expect(formatEventTime('1901-01-01 00:00:00', DT)).toEqual({
      ok: false,
      reason: "event_time 1901-01-01 00:00:00 is outside what ClickHouse's DateTime('UTC') can store (1970-01-01 00:00:00 to 2105-12-31 23:59:59)",
    });
    expect(formatEventTime('2024-02-30 00:00:00', DT)).toMatchObject({ ok: false, reason: expect.stringMatching(/not a timestamp/) });
  });
});

describe('rows', () => {
  it('maps an event with its Kafka position', () => {
    const r = toClickHouseRow(
      { event: { id: 7, username: null, event_type: 'login', event_time: '2023-10-26 10:00:00.000000' }, topic: 't', partition: 2, offset: '41' },
      DT,
      '2026-01-01 00:00:00',
    );
    expect(r).toEqual({
      ok: true,
      row: { id: 7, username: null, event_type: 'login', event_time: '2023-10-26 10:00:00', kafka_partition: 2, kafka_offset: 41, ingested_at: '2026-01-01 00:00:00' },
    });
  });

  it('keeps the first of each id', () => {
    expect(firstOfEachId([{ id: 1, n: 'a' }, { id: 2, n: 'b' }, { id: 1, n: 'c' }], (x) => x.id)).toEqual([{ id: 1, n: 'a' }, { id: 2, n: 'b' }]);
  });
});

describe('the existence check condition', () => {
  it('turns long runs into BETWEEN and the rest into IN', () => {
    expect(idConditions([5, 3, 4, 9, 1, 10, 3])).toEqual(['id IN (1,3,4,5,9,10)']);
    expect(idConditions([5, 3, 4, 9, 1, 10, 3], 200_000, 16, 3)).toEqual(['id BETWEEN 3 AND 5 OR id IN (1,9,10)']);
    expect(idConditions(Array.from({ length: 20_000 }, (_, i) => 1000 + i))).toEqual(['id BETWEEN 1000 AND 20999']);
    expect(idConditions([])).toEqual([]);
  });

  it('keeps only the longest runs as ranges (18.16 is quadratic in the number of ORs)', () => {
    // 40 runs of 20, one run of 100: with maxRanges 2, the run of 100 and one run of 20 are ranges.
    const ids = [...Array.from({ length: 40 }, (_, r) => Array.from({ length: 20 }, (_, i) => r * 100 + i)).flat(), ...Array.from({ length: 100 }, (_, i) => 10_000 + i)];
    const [c] = idConditions(ids, 200_000, 2);
    expect(c!.match(/BETWEEN/g)).toHaveLength(2);
    expect(c).toContain('id BETWEEN 10000 AND 10099');
    const singles = /IN \(([^)]*)\)/.exec(c!)![1]!.split(',');
    expect(singles).toHaveLength(40 * 20 - 20);
  });

  it('splits scattered ids so that no query passes the size limit', () => {
    const ids = Array.from({ length: 30_000 }, (_, i) => i * 1_000_003);
    const parts = idConditions(ids, 50_000);
    expect(parts.length).toBeGreaterThan(1);
    for (const p of parts) expect(p.length).toBeLessThan(50_100);
    const back = parts.flatMap((p) => /IN \(([^)]*)\)/.exec(p)![1]!.split(',').map(Number));
    expect(back).toEqual(ids);
  });

  it('refuses anything but non-negative safe integers (they are interpolated)', () => {
    expect(() => idConditions([1, -2])).toThrow(/not a non-negative safe integer/);
    expect(() => idConditions([1.5])).toThrow();
    expect(() => idConditions([Number.NaN])).toThrow();
    expect(() => idConditions([2 ** 53])).toThrow();
  });
});
