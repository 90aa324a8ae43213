import { describe, expect, it } from 'vitest';
import { decodeMessage, encodeRow, parseTimestamp } from '../../src/codec.js';

const buf = (s: string) => Buffer.from(s, 'utf8');

describe('codec', () => {
  it('encodes a row as key = id and value = JSON without the flag, and decodes it back', () => {
    const row = { id: 7, username: 'zoë "q" \\ \n 🚀', event_type: null, event_time: '2024-02-29 23:59:59.123456' };
    const msg = encodeRow(row);
    expect(msg.key).toBe('7');
    expect(JSON.parse(msg.value.toString('utf8'))).toEqual(row);
    expect(decodeMessage(msg.value)).toEqual({ ok: true, event: row });
  });

  it('turns a bigint id that node-postgres returns as text into a JSON number', () => {
    const msg = encodeRow({ id: '9007199254740991', username: 'a', event_type: 'b', event_time: null });
    expect(msg.value.toString()).toBe('{"id":9007199254740991,"username":"a","event_type":"b","event_time":null}');
  });

  it.each([
    ['', /empty/],
    ['{not json', /^not JSON/],
    ['[1,2]', /not a JSON object/],
    ['{"username":"a","event_type":"b","event_time":null}', /missing id/],
    ['{"id":"12","username":"a","event_type":"b","event_time":null}', /id must be a non-negative integer, got "12"/],
    ['{"id":1.5,"username":"a","event_type":"b","event_time":null}', /id must be/],
    ['{"id":1,"username":5,"event_type":"b","event_time":null}', /username must be a string or null/],
    ['{"id":1,"username":"a","event_time":null}', /missing event_type/],
    ['{"id":1,"username":"a","event_type":"b","event_time":"not a date"}', /event_time is not a timestamp/],
    ['{"id":1,"username":"a","event_type":"b","event_time":"2023-02-30 00:00:00"}', /event_time is not a timestamp/],
    ['{"id":1,"username":"a","event_type":"b","event_time":"infinity"}', /event_time is not a timestamp/],
  ])('rejects %s with a reason', (value, reason) => {
    const r = decodeMessage(buf(value));
    expect(r.ok).toBe(false);
    expect(r.ok ? '' : r.reason).toMatch(reason);
  });

  it('parses timestamps, with and without fractions, and checks the calendar', () => {
    expect(parseTimestamp('2024-02-29 23:59:59')).toEqual({ year: 2024, month: 2, day: 29, hour: 23, minute: 59, second: 59, micros: '000000' });
    expect(parseTimestamp('2023-10-26 10:00:00.5')?.micros).toBe('500000');
    expect(parseTimestamp('2023-02-29 00:00:00')).toBeNull();
    expect(parseTimestamp('1900-02-29 00:00:00')).toBeNull();
    expect(parseTimestamp('2000-02-29 00:00:00')).not.toBeNull();
    expect(parseTimestamp('2023-10-26 24:00:00')).toBeNull();
  });
});
