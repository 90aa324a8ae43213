// The consumer's messages (issue 14): a record our decoder read in place is the consumer's message
// itself (FetchedRecord.received), not wrapped in a second object per message; a record kafkajs
// decoded (a compressed batch) is wrapped. Either way the consumer and the sink see the same
// topic, partition, offset, key, value, timestamp and headers as kafkajs gives.
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { kafkajsPatch } from '../../src/kafka/kafkajs-patch.js';
import { encodeRecordBatch, FetchedRecord } from '../../src/kafka/record-batch.js';
import { inboundOf } from '../../src/sink/consumer.js';
import type { KafkaMessage } from 'kafkajs';

const require = createRequire(import.meta.url);
const Decoder = require('kafkajs/src/protocol/decoder.js') as new (b: Buffer) => unknown;
const decode = require('kafkajs/src/protocol/recordBatch/v0/decoder.js') as (d: unknown) => Promise<{ records: KafkaMessage[] }>;
const kafkajsDecode = kafkajsPatch.originalBatchDecoder as (d: unknown) => Promise<{ records: KafkaMessage[] }>;

const MESSAGES = [
  { key: 'k1', value: '{"id":"1","_op":"upsert","_version":7}', timestamp: '1764180000000' },
  { key: null, value: null, timestamp: '1764180000000' }, // a tombstone: no key, no value
  { key: Buffer.from('k3'), value: Buffer.from('ü€'), timestamp: '1764180000000', headers: { h: 'x' } },
];

/** What a reader of a consumed message sees of it. */
const seen = (m: ReturnType<typeof inboundOf>[number]) => ({
  topic: m.topic,
  partition: m.partition,
  offset: m.offset,
  key: m.key?.toString('utf8') ?? null,
  value: m.value?.toString('utf8') ?? null,
  timestamp: m.timestamp,
  headers: Object.fromEntries(Object.entries(m.headers).map(([k, v]) => [k, String(v)])),
  isItsOwnRef: m.ref === m,
});

describe("the consumer's messages (issue 14)", () => {
  it('a record read in place is the message itself; one decoded by kafkajs is wrapped; both read the same', async () => {
    const batch = encodeRecordBatch({ messages: MESSAGES, producerId: 1, producerEpoch: 0, firstSequence: 0, transactional: false });
    batch.writeBigInt64BE(41n, 0); // FirstOffset, as the broker sets it
    const ours = (await decode(new Decoder(batch))).records;
    const theirs = (await kafkajsDecode(new Decoder(batch))).records;
    expect(ours.every((r) => r instanceof FetchedRecord)).toBe(true);
    expect(theirs.some((r) => r instanceof FetchedRecord)).toBe(false);

    const inPlace = inboundOf('user_login', 2, ours);
    const wrapped = inboundOf('user_login', 2, theirs);
    expect(inPlace.map((m, i) => (m as unknown) === ours[i])).toEqual([true, true, true]);
    expect(wrapped.map((m, i) => m === (theirs[i] as unknown))).toEqual([false, false, false]);
    const expected = [
      { topic: 'user_login', partition: 2, offset: '41', key: 'k1', value: MESSAGES[0]?.value, timestamp: '1764180000000', headers: {}, isItsOwnRef: true },
      { topic: 'user_login', partition: 2, offset: '42', key: null, value: null, timestamp: '1764180000000', headers: {}, isItsOwnRef: true },
      { topic: 'user_login', partition: 2, offset: '43', key: 'k3', value: 'ü€', timestamp: '1764180000000', headers: { h: 'x' }, isItsOwnRef: true },
    ];
    expect(inPlace.map(seen)).toEqual(expected);
    expect(wrapped.map(seen)).toEqual(expected);
    // The sink reads a value in place from its span; a null value has none (valueAt < 0).
    const [first, tombstone] = inPlace as [FetchedRecord & { bytes: Buffer }, FetchedRecord];
    expect(first.bytes.toString('utf8', first.valueAt, first.valueEnd)).toBe(MESSAGES[0]?.value);
    expect(tombstone.valueAt).toBe(-1);
  });
});
