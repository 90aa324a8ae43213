/**
 * Replacements of kafkajs 2.2.4 internals, applied before kafkajs loads.
 *
 * 1. The grouping of a send by partition.
 * kafkajs groups the messages of every send by partition with `[...current, message]` inside a
 * reduce: quadratic in the messages per partition of one send (upstream: tulios/kafkajs#1576, open;
 * kafkajs has had no release since 2023). A 2,000-row batch spends milliseconds there, and the
 * backlog-drain benchmark spent ~6 % of the streamer's CPU in it, plus the garbage it leaves.
 * This puts a linear function with the same contract in that module's place in the require cache:
 * `{ [partition]: the messages of that partition, in order }`, `{}` without partition metadata.
 *
 * 2. The encoder of a produce request (v3, which v4–v7 reuse): record batches written in one buffer
 * each (src/kafka/record-batch.ts) instead of a chain of per-message encoders — the same bytes for
 * uncompressed batches, kafkajs's own encoder for compressed ones (the streamer sends none).
 *
 * 3. The record batch decoder of fetch responses (uncompressed batches; record-batch.ts): the same
 * records, read in place.
 *
 * 4. murmur2, which picks a keyed message's partition (murmur2.ts): the same partitions, in 32-bit
 * arithmetic instead of a Long per operation.
 *
 * 5. The consumer's Batch (one partition's messages of a fetch): kafkajs keeps the messages at or
 * above the fetched offset by parsing each message's offset into a Long (several objects per
 * message); offsets are compared as the decimal text they are. The same fields, the same class.
 *
 * It works only if it runs before kafkajs is first loaded, so it must be the FIRST import of every
 * module that imports kafkajs (ES modules run their imports in order). `kafkajsPatch.active` says
 * whether it took; a unit test checks it, and that both functions group alike.
 */
import { createRequire } from 'node:module';
import { decodePlainBatch, encodeRecordBatch, isPlainBatch, type BatchMessage, type FetchDecoder } from './record-batch.js';
import { murmur2 } from './murmur2.js';

interface GroupArgs<M> {
  topic: string;
  partitionMetadata: unknown[];
  messages: M[];
  partitioner: (args: { topic: string; partitionMetadata: unknown[]; message: M }) => number;
}
type Group = <M>(args: GroupArgs<M>) => Record<number, M[]>;

export function groupMessagesPerPartition<M>({ topic, partitionMetadata, messages, partitioner }: GroupArgs<M>): Record<number, M[]> {
  if (partitionMetadata.length === 0) return {};
  const out: Record<number, M[]> = {};
  for (const message of messages) {
    const partition = partitioner({ topic, partitionMetadata, message });
    (out[partition] ??= []).push(message);
  }
  return out;
}

interface ProduceArgs {
  acks: number;
  timeout: number;
  transactionalId?: string | null;
  producerId?: { toString(): string } | number;
  producerEpoch?: number;
  compression?: number;
  topicData: Array<{ topic: string; partitions: Array<{ partition: number; firstSequence?: number; messages: BatchMessage[] }> }>;
}
interface ProduceRequest {
  apiKey: number;
  apiVersion: number;
  apiName: string;
  expectResponse: () => boolean;
  encode: () => Promise<unknown>;
}
type ProduceV3 = (args: ProduceArgs) => ProduceRequest;

/** What kafkajs's Encoder#writeEncoder reads of an encoder: `buf` (checked to be a Buffer) and `buffer`. */
function asEncoder(bytes: Buffer): { buf: Buffer; buffer: Buffer; size(): number } {
  return { buf: bytes, buffer: bytes, size: () => bytes.length };
}

function int16(v: number): Buffer {
  const b = Buffer.allocUnsafe(2);
  b.writeInt16BE(v);
  return b;
}
function int32(v: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeInt32BE(v);
  return b;
}
/** Kafka's STRING / NULLABLE_STRING: int16 length (-1 for null), UTF-8 bytes. */
function str(v: string | null): Buffer {
  if (v === null) return int16(-1);
  const b = Buffer.from(v, 'utf8');
  return Buffer.concat([int16(b.length), b]);
}

/** Produce Request v3 => transactional_id acks timeout [topic [partition record_set]], as kafkajs's module is called. */
export function makeProduceV3(original: ProduceV3): ProduceV3 {
  return (args) => {
    if ((args.compression ?? 0) !== 0) return original(args);
    const { acks, timeout, topicData } = args;
    const transactionalId = args.transactionalId ?? null;
    const producerId = args.producerId ?? -1;
    const producerEpoch = args.producerEpoch ?? 0;
    return {
      apiKey: 0,
      apiVersion: 3,
      apiName: 'Produce',
      expectResponse: () => acks !== 0,
      encode: async () => {
        const parts: Buffer[] = [str(transactionalId), int16(acks), int32(timeout), int32(topicData.length)];
        for (const { topic, partitions } of topicData) {
          parts.push(str(topic), int32(partitions.length));
          for (const p of partitions) {
            const batch = encodeRecordBatch({ messages: p.messages, producerId, producerEpoch, firstSequence: p.firstSequence ?? 0, transactional: !!transactionalId });
            parts.push(int32(p.partition), int32(batch.length), batch);
          }
        }
        return asEncoder(Buffer.concat(parts));
      },
    };
  };
}

/** A fetched message, as far as Batch looks at it. */
interface FetchedMessage {
  offset: string;
  isControlRecord?: boolean;
}
interface PartitionData {
  partition: number;
  highWatermark: string;
  messages: FetchedMessage[];
  abortedTransactions?: unknown[];
}
export type BatchClass = new (topic: string, fetchedOffset: string, partitionData: PartitionData) => object;
type FilterAborted = (args: { messages: FetchedMessage[]; abortedTransactions?: unknown[] }) => FetchedMessage[];

/** A non-negative offset in its canonical decimal text (what both decoders give). */
const PLAIN_OFFSET = /^(?:0|[1-9]\d*)$/;

/**
 * kafkajs's Batch (consumer/batch.js) without a Long per message: objects of kafkajs's own class
 * (its methods, `instanceof`), their fields set as its constructor sets them.
 */
export function makeBatch(Original: BatchClass, filterAborted: FilterAborted): BatchClass {
  function Batch(topic: string, fetchedOffset: string, partitionData: PartitionData): object {
    if (typeof fetchedOffset !== 'string' || !PLAIN_OFFSET.test(fetchedOffset)) return new Original(topic, fetchedOffset, partitionData);
    const { abortedTransactions, messages } = partitionData;
    const self = Object.create(Original.prototype) as Record<string, unknown>;
    self.fetchedOffset = fetchedOffset;
    self.topic = topic;
    self.partition = partitionData.partition;
    self.highWatermark = partitionData.highWatermark;
    self.rawMessages = messages;
    const n = fetchedOffset.length;
    // At or above the fetched offset (a compressed batch may start below it).
    const within = messages.filter((m) => m.offset.length > n || (m.offset.length === n && m.offset >= fetchedOffset));
    self.messagesWithinOffset = within;
    self.messages = filterAborted({ messages: within, abortedTransactions }).filter((m) => !m.isControlRecord);
    return self;
  }
  Batch.prototype = Original.prototype;
  return Batch as unknown as BatchClass;
}

const require = createRequire(import.meta.url);
const path = (p: string) => require.resolve(`kafkajs/src/${p}`);
// Modules that load the ones replaced: if any is loaded already, kafkajs keeps its own versions.
const users = ['producer/sendMessages.js', 'protocol/requests/produce/v3/request.js', 'protocol/requests/fetch/v4/decodeMessages.js', 'producer/partitioners/default/index.js', 'consumer/consumerGroup.js'];
const alreadyLoaded = users.some((u) => require.cache[path(u)] !== undefined);

type BatchDecoder = (d: FetchDecoder) => Promise<unknown>;
const { KafkaJSPartialMessageError } = require(path('errors.js')) as { KafkaJSPartialMessageError: new (m: string) => Error };

/** Loads kafkajs's module and puts `replace(original)` in its place; whether it took. */
function replaceModule<F>(file: string, replace: (original: F) => unknown): { original: F; took: boolean } {
  const original = require(path(file)) as F;
  const cached = require.cache[path(file)];
  if (!cached || alreadyLoaded) return { original, took: false };
  cached.exports = replace(original);
  return { original, took: true };
}

const grouping = replaceModule<Group>('producer/groupMessagesPerPartition.js', () => groupMessagesPerPartition);
const produceV3 = replaceModule<ProduceV3>('protocol/requests/produce/v3/request.js', makeProduceV3);
const batchDecoder = replaceModule<BatchDecoder>('protocol/recordBatch/v0/decoder.js', (original) => async (d: FetchDecoder) =>
  isPlainBatch(d) ? decodePlainBatch(d, (m) => new KafkaJSPartialMessageError(m)) : original(d),
);
const hash = replaceModule<(key: unknown) => number>('producer/partitioners/default/murmur2.js', () => murmur2);
const filterAborted = require(path('consumer/filterAbortedMessages.js')) as FilterAborted;
const batch = replaceModule<BatchClass>('consumer/batch.js', (original) => makeBatch(original, filterAborted));

export const kafkajsPatch = {
  /** False when kafkajs was loaded before this module: it then runs its own versions. */
  active: grouping.took && produceV3.took && batchDecoder.took && hash.took && batch.took,
  /** kafkajs's own functions, for the tests that compare. */
  original: grouping.original,
  originalProduceV3: produceV3.original,
  originalBatchDecoder: batchDecoder.original,
  originalMurmur2: hash.original,
  originalBatch: batch.original,
};
