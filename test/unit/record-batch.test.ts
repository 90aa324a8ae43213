import { afterEach, describe, expect, it, vi } from 'vitest';
// As in src/: the patch is imported by the modules that use kafkajs, before kafkajs.
import { answeredAfter, kafkajsPatch, makeProduceV3 } from '../../src/kafka/kafkajs-patch.js';
import { encodeRecordBatch, type BatchMessage } from '../../src/kafka/record-batch.js';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const Long = require('kafkajs/src/utils/long.js') as { fromValue(v: unknown): { toString(): string } };
const produce = makeProduceV3(kafkajsPatch.originalProduceV3);
/** The request framing kafkajs's connection loads: ours, once the patch took. */
type Frame = (a: { correlationId: number; clientId: string | null; request: unknown }) => Promise<{ buffer: Buffer }>;
const frame = require('kafkajs/src/protocol/request.js') as Frame;
const theirFrame = kafkajsPatch.originalFrameRequest as unknown as Frame;

type Args = Parameters<typeof produce>[0];
async function bytes(req: ReturnType<typeof produce>): Promise<Buffer> {
  return ((await req.encode()) as { buffer: Buffer }).buffer;
}

/** A deterministic pseudo-random generator, so that a failure can be replayed. */
function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function randomMessages(rand: () => number, n: number, timestamps: 'same' | 'mixed' | 'none' | 'numbers'): BatchMessage[] {
  const texts = ['', 'a', 'ü€𝄞', 'x'.repeat(200), 'y'.repeat(20_000), '{"id":1,"_op":"upsert","_version":7}'];
  const pick = <T,>(xs: T[]) => xs[Math.floor(rand() * xs.length)] as T;
  return Array.from({ length: n }, (_, i) => {
    const m: BatchMessage = { value: null };
    const k = rand();
    m.key = k < 0.2 ? null : k < 0.4 ? Buffer.from(pick(texts)) : k < 0.5 ? undefined : `${i}-${pick(texts).slice(0, 50)}`;
    const v = rand();
    m.value = v < 0.1 ? null : v < 0.6 ? Buffer.from(pick(texts)) : pick(texts);
    if (timestamps === 'same') m.timestamp = '1764180000000';
    else if (timestamps === 'mixed') m.timestamp = rand() < 0.2 ? undefined : String(1764180000000 + Math.floor((rand() - 0.5) * 5_000_000_000));
    else if (timestamps === 'numbers') m.timestamp = 1764180000000 + i;
    if (rand() < 0.3) m.headers = { 'x-one': pick(texts), 'x-buf': Buffer.from(pick(texts)), 'x-many': [pick(texts), Buffer.from('b')] };
    else if (rand() < 0.1) m.headers = {};
    return m;
  });
}

describe('record batches written in one buffer (the producer path, issue 14)', () => {
  afterEach(() => vi.useRealTimers());

  it('took: kafkajs loads our produce request v3, which v4–v7 reuse', () => {
    expect(kafkajsPatch.active).toBe(true);
    const v3 = require('kafkajs/src/protocol/requests/produce/v3/request.js');
    expect(v3).not.toBe(kafkajsPatch.originalProduceV3);
    expect(v3({ acks: -1, timeout: 1, topicData: [] }).apiVersion).toBe(3);
    expect(frame).not.toBe(kafkajsPatch.originalFrameRequest);
    const v7 = require('kafkajs/src/protocol/requests/produce/v7/request.js');
    const req = v7({ acks: -1, timeout: 1, topicData: [{ topic: 't', partitions: [{ partition: 0, messages: [{ key: 'k', value: 'v', timestamp: '1' }] }] }] });
    expect(req.apiVersion).toBe(7);
  });

  for (const timestamps of ['same', 'mixed', 'none', 'numbers'] as const) {
    it(`writes the same bytes as kafkajs 2.2.4: random messages, timestamps ${timestamps}`, async () => {
      vi.useFakeTimers({ toFake: ['Date'] });
      vi.setSystemTime(1764190000000);
      const rand = rng(timestamps.length * 7919);
      for (let round = 0; round < 20; round++) {
        const args: Args = {
          acks: round % 3 === 0 ? 1 : -1,
          timeout: 30_000,
          transactionalId: round % 4 === 0 ? 'tx-ü' : round % 4 === 1 ? null : undefined,
          producerId: round % 2 === 0 ? Long.fromValue(round * 1_000_003) : undefined,
          producerEpoch: round % 5,
          topicData: [
            { topic: `topic-${round}`, partitions: [0, 1, 2].map((p) => ({ partition: p, firstSequence: round * 10 + p, messages: randomMessages(rand, 1 + Math.floor(rand() * 300), timestamps) })) },
            { topic: 'other', partitions: [{ partition: 7, messages: randomMessages(rand, 3, timestamps) }] },
          ],
        };
        const ours = await bytes(produce(args));
        const theirs = await bytes(kafkajsPatch.originalProduceV3(args));
        expect(ours.length).toBe(theirs.length);
        expect(ours.equals(theirs)).toBe(true);
        // The whole request as it goes to the socket: size, header, body written in one buffer.
        const header = { correlationId: round * 1_000_033, clientId: round % 3 === 0 ? 'streamer-ü' : round % 3 === 1 ? 'streamer' : null };
        const sent = (await frame({ ...header, request: produce(args) })).buffer;
        const theirsSent = (await theirFrame({ ...header, request: kafkajsPatch.originalProduceV3(args) })).buffer;
        expect(sent.length).toBe(theirsSent.length);
        expect(sent.equals(theirsSent)).toBe(true);
      }
    });
  }

  it('writes what kafkajs writes for a record batch of the streamer: keys as text, one timestamp', () => {
    const messages = Array.from({ length: 2000 }, (_, i) => ({ key: String(i), value: Buffer.from(`{"id":${i},"_op":"upsert","_version":${i}}`), timestamp: '1764180000123' }));
    const batch = encodeRecordBatch({ messages, producerId: 42, producerEpoch: 1, firstSequence: 4000, transactional: false });
    // Spot checks against the layout (the byte-for-byte comparison is above).
    expect(batch.readBigInt64BE(0)).toBe(0n);
    expect(batch.readInt32BE(8)).toBe(batch.length - 12);
    expect(batch.readInt8(16)).toBe(2);
    expect(batch.readInt32BE(23)).toBe(1999);
    expect(batch.readBigInt64BE(27)).toBe(1764180000123n);
    expect(batch.readBigInt64BE(43)).toBe(42n);
    expect(batch.readInt32BE(53)).toBe(4000);
    expect(batch.readInt32BE(57)).toBe(2000);
  });

  it('leaves compressed batches to kafkajs', async () => {
    const args: Args = { acks: -1, timeout: 1, compression: 1, topicData: [{ topic: 't', partitions: [{ partition: 0, messages: [{ key: 'k', value: 'v', timestamp: '1' }] }] }] };
    const req = produce(args);
    const enc = (await req.encode()) as { buffer: Buffer };
    expect(enc.buffer.equals(((await kafkajsPatch.originalProduceV3(args).encode()) as { buffer: Buffer }).buffer)).toBe(true);
    const sent = (await frame({ correlationId: 5, clientId: 'c', request: produce(args) })).buffer;
    expect(sent.equals((await theirFrame({ correlationId: 5, clientId: 'c', request: kafkajsPatch.originalProduceV3(args) })).buffer)).toBe(true);
  });

  it('reuses a produce request’s buffer once the broker answered it, never before, and writes the same bytes in it', async () => {
    const Connection = require('kafkajs/src/network/connection.js') as { prototype: { send: unknown } };
    expect(Connection.prototype.send).not.toBe(kafkajsPatch.originalConnectionSend);
    const messages = (n: number, tag: string) => Array.from({ length: n }, (_, i) => ({ key: String(i), value: `{"id":${i},"tag":"${tag}"}`, timestamp: '1764180000000' }));
    const argsOf = (n: number, tag: string, acks = -1): Args => ({ acks, timeout: 30_000, topicData: [{ topic: 't', partitions: [{ partition: 0, messages: messages(n, tag) }] }] });
    const header = { correlationId: 9, clientId: 'streamer' };
    const sendOf = async (args: Args) => {
      const request = produce(args) as ReturnType<typeof produce> & { answered(): void };
      return { request, sent: (await frame({ ...header, request })).buffer };
    };
    const theirs = async (args: Args) => (await theirFrame({ ...header, request: kafkajsPatch.originalProduceV3(args) })).buffer;

    const first = await sendOf(argsOf(3000, 'first'));
    const firstBytes = Buffer.from(first.sent);
    // Not answered yet: the next request gets a buffer of its own, and the first is left as it was.
    const second = await sendOf(argsOf(2000, 'second'));
    expect(second.sent.buffer).not.toBe(first.sent.buffer);
    expect(first.sent.equals(firstBytes)).toBe(true);
    // Answered: its buffer holds the next request — the same bytes as kafkajs's framing of it.
    first.request.answered();
    const third = await sendOf(argsOf(2500, 'third'));
    expect(third.sent.buffer).toBe(first.sent.buffer);
    expect(third.sent.equals(await theirs(argsOf(2500, 'third')))).toBe(true);
    expect(second.sent.equals(await theirs(argsOf(2000, 'second')))).toBe(true);
    // acks=0: a send resolves once written, so the buffer is never handed on.
    const unanswered = await sendOf(argsOf(3000, 'acks0', 0));
    unanswered.request.answered();
    const after = await sendOf(argsOf(3000, 'after', 0));
    expect(after.sent.buffer).not.toBe(unanswered.sent.buffer);
    second.request.answered();
    third.request.answered();
  });

  it('tells a request it was answered only when the send resolved', async () => {
    const answered = vi.fn();
    const ok = answeredAfter(async (a: { request: { answered: () => void } }) => {
      expect(answered).not.toHaveBeenCalled(); // not before the answer
      return a;
    });
    const args = { request: { answered } };
    await expect(ok(args)).resolves.toBe(args);
    expect(answered).toHaveBeenCalledTimes(1);
    const failing = answeredAfter(async (_a: { request: { answered: () => void } }) => {
      throw new Error('request timed out');
    });
    await expect(failing({ request: { answered } })).rejects.toThrow(/timed out/);
    expect(answered).toHaveBeenCalledTimes(1);
    // Requests of kafkajs's own (no answered()) pass through.
    await expect(answeredAfter(async (a: { request: object }) => 7)({ request: {} })).resolves.toBe(7);
  });

  it('frames every other request as kafkajs does, encoding it once', async () => {
    const metadata = require('kafkajs/src/protocol/requests/metadata/v4/request.js') as (a: unknown) => { encode: () => Promise<unknown> };
    const request = metadata({ topics: ['a', 'topic-ü'], allowAutoTopicCreation: false });
    const encode = vi.spyOn(request, 'encode');
    const sent = (await frame({ correlationId: 77, clientId: 'streamer', request })).buffer;
    expect(encode).toHaveBeenCalledTimes(1);
    const theirs = (await theirFrame({ correlationId: 77, clientId: 'streamer', request: metadata({ topics: ['a', 'topic-ü'], allowAutoTopicCreation: false }) })).buffer;
    expect(sent.equals(theirs)).toBe(true);
    expect(sent.readInt32BE(0)).toBe(sent.length - 4);
    expect(sent.readInt16BE(4)).toBe(3); // Metadata's ApiKey
  });
});

describe('record batches read in place (the consumer path, issue 14)', () => {
  const Decoder = require('kafkajs/src/protocol/decoder.js') as new (b: Buffer) => { offset: number; buffer: Buffer };
  const decode = require('kafkajs/src/protocol/recordBatch/v0/decoder.js') as (d: unknown) => Promise<unknown>;
  const { RecordBatch } = require('kafkajs/src/protocol/recordBatch/v0/index.js') as { RecordBatch: (a: unknown) => Promise<{ buffer: Buffer }> };
  const Record = require('kafkajs/src/protocol/recordBatch/record/v0/index.js') as (a: unknown) => unknown;

  /** Reads every batch of `buf` with both decoders, as kafkajs's fetch does; the partial-batch error included. */
  async function both(buf: Buffer): Promise<[unknown[], unknown[]]> {
    const run = async (fn: (d: unknown) => Promise<unknown>) => {
      const d = new Decoder(buf);
      const out: unknown[] = [];
      while (d.buffer.length - d.offset >= 49) {
        try {
          out.push(await fn(d));
        } catch (e) {
          out.push({ error: (e as Error).name, message: (e as Error).message });
          break;
        }
      }
      return out;
    };
    return [plain((await run(decode)).map(fields)), plain((await run(kafkajsPatch.originalBatchDecoder as (d: unknown) => Promise<unknown>)).map(fields))];
  }
  /** A batch with its records' fields as a reader gets them (ours makes key and value views when read). */
  const fields = (batch: unknown): unknown => {
    const b = batch as { records?: Array<Record<string, unknown>> };
    if (!Array.isArray(b.records)) return batch;
    const read = (r: Record<string, unknown>) =>
      Object.fromEntries(['magicByte', 'attributes', 'timestamp', 'offset', 'key', 'value', 'headers', 'isControlRecord', 'batchContext'].map((k) => [k, r[k]]));
    return { ...b, records: b.records.map(read) };
  };
  /** Buffers as base64 text: a deep comparison of Buffers element by element takes minutes. */
  const plain = (x: unknown): unknown[] => JSON.parse(JSON.stringify(x, (_k, v) => (v && v.type === 'Buffer' && Array.isArray(v.data) ? `buffer:${Buffer.from(v.data).toString('base64')}` : v)));

  it('took: kafkajs loads our decoder', () => {
    expect(decode).not.toBe(kafkajsPatch.originalBatchDecoder);
  });

  it('gives the same records as kafkajs 2.2.4: offsets, timestamps, keys, values, headers, control and log-append flags, a partial batch', async () => {
    const rand = rng(424242);
    for (let round = 0; round < 20; round++) {
      const batches: Buffer[] = [];
      for (let b = 0; b < 4; b++) {
        const batch = encodeRecordBatch({ messages: randomMessages(rand, 1 + Math.floor(rand() * 200), b % 2 ? 'mixed' : 'same'), producerId: 7, producerEpoch: 0, firstSequence: 0, transactional: round % 3 === 0 });
        // FirstOffset as a broker sets it (one beyond 2^53 too); attributes: log-append time, control.
        batch.writeBigInt64BE(round === 5 ? 2n ** 60n : BigInt(Math.floor(rand() * 1e12)), 0);
        let attributes = batch.readInt16BE(21);
        if (rand() < 0.3) attributes |= 0x8;
        if (rand() < 0.1) attributes |= 0x20;
        batch.writeInt16BE(attributes, 21);
        batches.push(batch);
      }
      let buf = Buffer.concat(batches);
      if (round % 4 === 0) buf = buf.subarray(0, buf.length - 1 - Math.floor(rand() * 100)); // the fetch's size limit cut the last batch
      const [ours, theirs] = await both(buf);
      expect(ours).toEqual(theirs);
      expect(ours.length).toBe(4);
    }
  });

  it('leaves compressed batches to kafkajs', async () => {
    const records = [Record({ key: 'k', value: 'v', offsetDelta: 0, timestampDelta: 0 }), Record({ key: null, value: 'w', offsetDelta: 1, timestampDelta: 5 })];
    const gzip = (await RecordBatch({ compression: 1, records, firstTimestamp: 1764180000000, maxTimestamp: 1764180000005, lastOffsetDelta: 1 })).buffer;
    const [ours, theirs] = await both(gzip);
    expect(ours).toEqual(theirs);
    expect((ours[0] as { records: Array<{ value: string }> }).records.map((r) => r.value)).toEqual(['buffer:dg==', 'buffer:dw==']);
  });
});

describe('murmur2 in 32-bit arithmetic', () => {
  it('gives kafkajs 2.2.4 its partition for every key: text of every length, unicode, Buffers', () => {
    const rand = rng(99);
    const keys: Array<string | Buffer> = [];
    for (let i = 0; i < 20_000; i++) keys.push(String(i));
    for (let i = 0; i < 3_000; i++) {
      const len = Math.floor(rand() * 40);
      keys.push(Array.from({ length: len }, () => String.fromCodePoint(rand() < 0.8 ? 32 + Math.floor(rand() * 95) : 128 + Math.floor(rand() * 70000))).join(''));
      keys.push(Buffer.from(Array.from({ length: len }, () => Math.floor(rand() * 256))));
    }
    keys.push('x'.repeat(5000), '["7", "2024-01-01"]', '');
    const hash = require('kafkajs/src/producer/partitioners/default/murmur2.js') as (k: unknown) => number;
    expect(hash).not.toBe(kafkajsPatch.originalMurmur2);
    for (const k of keys) expect(hash(k)).toBe(kafkajsPatch.originalMurmur2(k));
  });
});
