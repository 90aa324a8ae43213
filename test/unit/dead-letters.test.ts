// The dead-letter path's sizing (issue 9, finding 2): sends cut to what a broker accepts, and a
// letter too large even alone recorded truncated, marked, with its original size and hash.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { chunkRecords, recordBytes, sendDeadLetters, SEND_BUDGET_BYTES, type DeadLetterInput, type DeadLetterRecord } from '../../src/sink/dead-letters.js';

const letter = (i: number, valueBytes = 100): DeadLetterInput => ({
  key: Buffer.from(String(i)),
  value: Buffer.alloc(valueBytes, 'x'),
  headers: { 'trace-id': `t${i}` },
  reason: 'event_time 1850-01-01 00:00:00 is outside what ClickHouse can store',
  topic: 'user_event',
  partition: i % 3,
  offset: String(i),
  timestamp: '1700000000000',
});
const tooLarge = Object.assign(new Error('The request included a message larger than the max message size the server will accept'), { type: 'MESSAGE_TOO_LARGE' });
const refused = (err: unknown) => (err as { type?: string }).type === 'MESSAGE_TOO_LARGE';

/** A broker that takes requests up to `maxRequest` bytes and records up to `maxRecord`. */
function broker(maxRequest: number, maxRecord = maxRequest) {
  const got: DeadLetterRecord[] = [];
  let requests = 0;
  const send = async (records: DeadLetterRecord[]) => {
    requests++;
    const size = records.reduce((s, r) => s + recordBytes(r), 0);
    if (size > maxRequest || records.some((r) => recordBytes(r) > maxRecord)) throw tooLarge;
    got.push(...records);
  };
  return { got, send, requests: () => requests };
}

describe('dead letters', () => {
  it('30,000 letters go out in sends of at most 512 KiB, every one of them, in order', async () => {
    const letters = Array.from({ length: 30_000 }, (_, i) => letter(i));
    const b = broker(1024 * 1024);
    await sendDeadLetters(letters, b.send, refused);
    expect(b.got).toHaveLength(30_000);
    expect(b.got.map((r) => r.headers['x-original-offset'])).toEqual(letters.map((l) => l.offset));
    for (const chunk of chunkRecords(b.got)) expect(chunk.reduce((s, r) => s + recordBytes(r), 0)).toBeLessThanOrEqual(SEND_BUDGET_BYTES);
  });

  it('keeps the original bytes and headers and adds the reason and the original position', async () => {
    const b = broker(1024 * 1024);
    await sendDeadLetters([letter(7)], b.send, refused);
    expect(b.got[0]).toEqual({
      key: Buffer.from('7'),
      value: Buffer.alloc(100, 'x'),
      headers: {
        'trace-id': 't7',
        'x-dlq-reason': 'event_time 1850-01-01 00:00:00 is outside what ClickHouse can store',
        'x-original-topic': 'user_event',
        'x-original-partition': '1',
        'x-original-offset': '7',
        'x-original-timestamp': '1700000000000',
      },
    });
  });

  it('a letter the topic refuses even alone is recorded with a prefix of its value, marked, with its size and hash', async () => {
    const big = letter(1, 200_000);
    const b = broker(1024 * 1024, 65_536);
    const truncated: number[] = [];
    await sendDeadLetters([letter(0), big, letter(2)], b.send, refused, (_l, bytes) => truncated.push(bytes));
    expect(b.got.map((r) => r.headers['x-original-offset'])).toEqual(['0', '1', '2']);
    const r = b.got[1]!;
    expect(r.headers['x-dlq-value-truncated']).toBe('true');
    expect(r.headers['x-dlq-value-bytes']).toBe('200000');
    expect(r.headers['x-dlq-value-sha256']).toBe(createHash('sha256').update(big.value!).digest('hex'));
    expect(r.headers['trace-id']).toBe('t1'); // the original headers stay while they fit
    expect(r.value!.length).toBe(50_000);
    expect(truncated).toEqual([50_000]);
  });

  it('drops the original headers last, and stops with a clear error only when not even an empty letter fits', async () => {
    const l = { ...letter(1, 10), headers: { huge: 'h'.repeat(5000) } };
    const b = broker(1024 * 1024, 1000);
    await sendDeadLetters([l], b.send, refused);
    expect(b.got[0]!.headers.huge).toBeUndefined();
    expect(b.got[0]!.value!.length).toBe(0);
    const none = broker(1024 * 1024, 10);
    await expect(sendDeadLetters([letter(1)], none.send, refused)).rejects.toThrow(/refuses even an empty dead letter .* raise its max\.message\.bytes/);
  });

  it('an error that is not a refusal (broker down) is thrown for the retry loop', async () => {
    const down = Object.assign(new Error('Connection error: connect ECONNREFUSED'), { name: 'KafkaJSConnectionError' });
    await expect(sendDeadLetters([letter(1)], async () => Promise.reject(down), refused)).rejects.toBe(down);
  });
});
