import { describe, expect, it } from 'vitest';
import {
  clickhouseErrorCode,
  clickhouseErrorText,
  clickhouseUnreachableMessage,
  eventTimeTypeFor,
  isClickHouseDataError,
  parseEventTimeType,
  parseServerVersion,
  supportsDateTime64,
} from '../../src/clickhouse.js';
import { loadConfig } from '../../src/config.js';

describe('the event_time type switch', () => {
  it.each([
    ['18.16.1', false],
    ['19.17.6.36', false],
    ['20.1.2.4', true],
    ['20.3.1', true],
    ['21.8.15.7', true],
    ['24.8.4.13', true],
    ['25.10.1.1', true],
  ])('ClickHouse %s has DateTime64: %s', (text, has) => {
    const v = parseServerVersion(text);
    expect(supportsDateTime64(v)).toBe(has);
    expect(eventTimeTypeFor(v)).toBe(has ? "DateTime64(6, 'UTC')" : "DateTime('UTC')");
  });

  it('reads the version number, and refuses what is not one', () => {
    expect(parseServerVersion(' 18.16.1\n')).toEqual({ major: 18, minor: 16, text: '18.16.1' });
    expect(() => parseServerVersion('')).toThrow(/cannot read the ClickHouse version/);
  });

  it('reads the column type system.columns prints', () => {
    expect(parseEventTimeType("Nullable(DateTime('UTC'))")).toEqual({ kind: 'DateTime' });
    expect(parseEventTimeType('DateTime')).toEqual({ kind: 'DateTime' });
    expect(parseEventTimeType("Nullable(DateTime64(6, 'UTC'))")).toEqual({ kind: 'DateTime64', scale: 6 });
    expect(parseEventTimeType('DateTime64(3)')).toEqual({ kind: 'DateTime64', scale: 3 });
    expect(parseEventTimeType('Nullable(String)')).toBeNull();
  });
});

describe('ClickHouse errors', () => {
  const old = new Error('Code: 27, e.displayText() = DB::Exception: Cannot parse input: expected " before: .123": (at row 1)\n, e.what() = DB::Exception\n');
  const modern = Object.assign(new Error('Cannot parse input'), { code: '27', type: 'CANNOT_PARSE_INPUT_ASSERTION_FAILED' });

  it('reads the code of an 18.16 answer and of a new one; none for a refused connection', () => {
    expect(clickhouseErrorCode(old)).toBe(27);
    expect(clickhouseErrorCode(modern)).toBe(27);
    expect(clickhouseErrorCode(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:8123'), { code: 'ECONNREFUSED' }))).toBeNull();
  });

  it('tells data errors (split the batch) from the server state (retry)', () => {
    expect(isClickHouseDataError(old)).toBe(true);
    expect(isClickHouseDataError(new Error('Code: 252, e.displayText() = DB::Exception: Too many parts (300)'))).toBe(false);
    expect(isClickHouseDataError(new Error('socket hang up'))).toBe(false);
  });

  it('shortens an 18.16 message to one line', () => {
    expect(clickhouseErrorText(old)).toBe('Code 27: Cannot parse input: expected " before: .123": (at row 1)');
  });

  it('says where ClickHouse was expected, without the password, and how to fix it', () => {
    const config = loadConfig({ CLICKHOUSE_URL: 'http://admin:s3cret@ch.example:8123', CLICKHOUSE_PASSWORD: 's3cret' });
    const msg = clickhouseUnreachableMessage(config, Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }));
    expect(msg).toBe(
      'ClickHouse at http://admin:***@ch.example:8123 is not reachable (connect ECONNREFUSED) — start it with "npm run stack:up" or set CLICKHOUSE_URL',
    );
    expect(msg).not.toContain('s3cret');
  });
});
