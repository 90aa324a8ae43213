// The message contract (README "The message contract"): what the producer writes and the
// consumer reads, and f141f4e's messages still read.
import { describe, expect, it } from 'vitest';
import { decodeMessage, encodeTruncate, encodeValue } from '../../src/tables/codec.js';

const decoded = (text: string) => decodeMessage(Buffer.from(text, 'utf8'));

describe('message codec', () => {
  it('writes the columns, then _op and _version; reads them back apart', () => {
    const v = encodeValue(['id', 'name'], ['7', '"zoë"'], 'upsert', '12');
    expect(v.toString()).toBe('{"id":7,"name":"zoë","_op":"upsert","_version":12}');
    expect(decodeMessage(v)).toEqual({ ok: true, message: { op: 'upsert', version: 12, fields: { id: 7, name: 'zoë' } } });
    expect(decodeMessage(encodeValue(['id'], ['7'], 'delete', '13'))).toEqual({ ok: true, message: { op: 'delete', version: 13, fields: { id: 7 } } });
    expect(decodeMessage(encodeTruncate('14'))).toEqual({ ok: true, message: { op: 'truncate', version: 14, fields: {} } });
  });

  it("reads a message of f141f4e (no _op, no _version) as an upsert of version 0", () => {
    expect(decoded('{"id":1,"username":"john_doe","event_type":"login","event_time":"2023-10-26 10:00:00.000000"}')).toEqual({
      ok: true,
      message: { op: 'upsert', version: 0, fields: { id: 1, username: 'john_doe', event_type: 'login', event_time: '2023-10-26 10:00:00.000000' } },
    });
  });

  it('gives a reason for every message it cannot read (the consumer dead-letters it with the reason)', () => {
    expect(decodeMessage(null)).toEqual({ ok: false, reason: 'empty message value' });
    expect(decoded('{"id":')).toMatchObject({ ok: false, reason: expect.stringMatching(/^not JSON: /) });
    expect(decoded('[1]')).toEqual({ ok: false, reason: 'not a JSON object' });
    expect(decoded('{"id":1,"_op":"merge"}')).toEqual({ ok: false, reason: '_op must be upsert, delete or truncate, got "merge"' });
    expect(decoded('{"id":1,"_version":-1}')).toEqual({ ok: false, reason: '_version must be a non-negative integer, got -1' });
    expect(decoded('{"id":1,"_version":"3"}')).toEqual({ ok: false, reason: '_version must be a non-negative integer, got "3"' });
    expect(decoded('{"id":1,"_version":9007199254740993}')).toMatchObject({ ok: false });
  });
});
