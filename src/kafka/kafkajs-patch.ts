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
 * 2. The encoder of a produce request (v3, which v4–v7 reuse): record batches measured first and
 * written in place (src/kafka/record-batch.ts) instead of a chain of per-message encoders — the
 * same bytes for uncompressed batches, kafkajs's own encoder for compressed ones (the streamer
 * sends none). And the framing of requests (protocol/request.js): a produce request is written
 * once, header and batches, in the buffer that goes to the socket — a buffer reused once the
 * broker has answered that request (Connection#send, wrapped: see `answeredAfter`); any other
 * request as kafkajs frames it.
 *
 * 3. The record batch decoder of fetch responses (uncompressed batches; record-batch.ts): the same
 * records, read in place.
 *
 * 4. murmur2, which picks a keyed message's partition (murmur2.ts): the same partitions, in 32-bit
 * arithmetic instead of a Long per operation.
 *
 * 5. The consumer's Batch (one partition's messages of a fetch): kafkajs keeps the messages at or
 * above the fetched offset by parsing each message's offset into a Long (several objects per
 * message); offsets are compared as the decimal text they are, and a list that needs no filtering
 * is not copied. The same fields, the same class.
 *
 * 6. The DefaultPartitioner: the same partitions, without kafkajs's array of the partitions with a
 * leader made for every message (`createDefaultPartitioner`).
 *
 * 7. The request queue's check of its waiting requests (network/requestQueue): kafkajs schedules it
 * again after every check, whether a request waits or not — on an empty queue, a timer of
 * `throttledUntil - now` ms, a negative number that Node runs after 1 ms (and Node 24 warns of on
 * stderr, TimeoutNegativeWarning). So every connection that had an answer polled its empty queue
 * ~1,000 times a second for the life of the process (upstream: tulios/kafkajs#1704 and #1751,
 * open). Now a check is scheduled only while a request waits, when kafkajs would have checked it.
 *
 * It works only if it runs before kafkajs is first loaded, so it must be the FIRST import of every
 * module that imports kafkajs (ES modules run their imports in order). `kafkajsPatch.active` says
 * whether it took; a unit test checks it, and that both functions group alike.
 */
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { decodePlainBatch, isPlainBatch, planRecordBatch, type BatchMessage, type FetchDecoder } from './record-batch.js';
import { murmur2 } from './murmur2.js';
import { BufferPool, Lease } from '../common/bytes.js';

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
  // One arguments object for the send, not one per message: kafkajs's partitioners (and ours
  // below) read its fields at once and keep nothing of it.
  const args = { topic, partitionMetadata, message: undefined as unknown as M };
  for (const message of messages) {
    args.message = message;
    const partition = partitioner(args);
    (out[partition] ??= []).push(message);
  }
  return out;
}

interface PartitionInfo {
  partitionId: number;
  leader: number;
}
interface PartitionerArgs {
  topic: string;
  partitionMetadata: readonly PartitionInfo[];
  message: { partition?: number | null; key?: Buffer | string | null };
}
const toPositive = (x: number) => x & 0x7fffffff;

/**
 * kafkajs's DefaultPartitioner (partitioners/legacy/partitioner.js over the Java client's
 * murmur2) without an array per message: kafkajs filters the partitions with a leader on every
 * call, before it looks at the message (~190 bytes of garbage per message with the arguments
 * object, the largest single allocation of the producer in the drain). The same contract: a
 * message's own partition; else the key's murmur2 modulo the partition count; else round-robin
 * over the partitions with a leader, from a random start per topic.
 */
export function createDefaultPartitioner(): (args: PartitionerArgs) => number {
  const counters = new Map<string, number>();
  return ({ topic, partitionMetadata, message }) => {
    let counter = counters.get(topic);
    if (counter === undefined) counters.set(topic, (counter = randomBytes(4).readUInt32BE(0)));
    if (message.partition !== null && message.partition !== undefined) return message.partition;
    if (message.key !== null && message.key !== undefined) return toPositive(murmur2(message.key)) % partitionMetadata.length;
    counters.set(topic, ++counter);
    let available = 0;
    for (const p of partitionMetadata) if (p.leader >= 0) available++;
    if (available === 0) return toPositive(counter) % partitionMetadata.length; // none has a leader: kafkajs too
    let i = toPositive(counter) % available;
    for (const p of partitionMetadata) if (p.leader >= 0 && i-- === 0) return p.partitionId;
    throw new Error('unreachable: fewer partitions with a leader than counted');
  };
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
  /** Called by the wrapped Connection#send once the broker answered (ours only). */
  answered?: () => void;
}
type ProduceV3 = (args: ProduceArgs) => ProduceRequest;

/** What kafkajs's Encoder#writeEncoder and connection.js read of an encoder: `buf` (checked to be a Buffer) and `buffer`. */
function asEncoder(bytes: Buffer): { buf: Buffer; buffer: Buffer; size(): number } {
  return { buf: bytes, buffer: bytes, size: () => bytes.length };
}

/** Bytes of Kafka's STRING / NULLABLE_STRING: int16 length (-1 for null), UTF-8 bytes. */
const stringSize = (v: string | null) => 2 + (v === null ? 0 : Buffer.byteLength(v, 'utf8'));
function writeString(buf: Buffer, at: number, v: string | null): number {
  if (v === null) return buf.writeInt16BE(-1, at);
  const n = buf.write(v, at + 2, 'utf8');
  buf.writeInt16BE(n, at);
  return at + 2 + n;
}

/**
 * A produce request's body, measured but not written: the request framing below writes it once,
 * behind the request's header, in the one buffer that goes to the socket. kafkajs's own framing
 * (protocol/request.js) copies a body into a new encoder, and that into another behind the size:
 * with its encoders' doubling, two buffers of the next power of two per request (2 × 512 KB for a
 * 300 KB request in the drain) on top of the body's. For kafkajs's framing (the patch not taken
 * for request.js) it is still an Encoder: `buf`/`buffer` write the body alone.
 */
export class PlannedBody {
  #bytes: Buffer | null = null;

  /** `lease`: where the framing borrows the request's buffer (null: a new one). */
  constructor(
    readonly bodySize: number,
    private readonly writeBody: (buf: Buffer, at: number) => number,
    readonly lease: Lease | null = null,
  ) {}

  get buffer(): Buffer {
    if (this.#bytes === null) {
      const bytes = Buffer.allocUnsafe(this.bodySize);
      this.writeAt(bytes, 0);
      this.#bytes = bytes;
    }
    return this.#bytes;
  }
  get buf(): Buffer {
    return this.buffer;
  }
  size(): number {
    return this.bodySize;
  }

  /** Writes the body at `at`; returns where it ends (checked against its size). */
  writeAt(buf: Buffer, at: number): number {
    const end = this.writeBody(buf, at);
    if (end !== at + this.bodySize) throw new Error(`produce request: wrote ${end - at} bytes of ${this.bodySize}`);
    return end;
  }
}

/**
 * The produce requests' buffers (a few hundred KB each in the drain), reused: a request's buffer
 * goes back only once the broker has answered it — it had then read the whole request, so the
 * socket holds none of it. A request not answered (timed out, a connection lost, acks=0) leaves
 * its buffer to the GC: it may still be queued for writing, or be written again by nobody.
 */
const REQUEST_BUFFERS = new BufferPool(4, 2 * 1024 * 1024);

/**
 * What kafkajs's Connection#send does, then — once it resolved, i.e. the broker's answer came and
 * was read — the request's `answered()`, if it has one: a produce request of ours gives its buffer
 * back then. A send that throws (a timeout, an error code in the answer, the connection lost) does
 * not call it.
 */
export function answeredAfter<A extends { request?: { answered?: () => void } }, R>(send: (this: unknown, args: A) => Promise<R>) {
  return async function (this: unknown, args: A): Promise<R> {
    const result = await send.call(this, args);
    args.request?.answered?.();
    return result;
  };
}

/** Produce Request v3 => transactional_id acks timeout [topic [partition record_set]], as kafkajs's module is called. */
export function makeProduceV3(original: ProduceV3): ProduceV3 {
  return (args) => {
    if ((args.compression ?? 0) !== 0) return original(args);
    const { acks, timeout, topicData } = args;
    const transactionalId = args.transactionalId ?? null;
    const producerId = args.producerId ?? -1;
    const producerEpoch = args.producerEpoch ?? 0;
    // acks=0: the send resolves once written, not answered, so nothing tells when the buffer is free.
    const lease = acks !== 0 ? new Lease(REQUEST_BUFFERS) : null;
    return {
      apiKey: 0,
      apiVersion: 3,
      apiName: 'Produce',
      expectResponse: () => acks !== 0,
      answered: () => lease?.end(),
      encode: async () => {
        const topics = topicData.map(({ topic, partitions }) => ({
          topic,
          batches: partitions.map((p) => ({
            partition: p.partition,
            batch: planRecordBatch({ messages: p.messages, producerId, producerEpoch, firstSequence: p.firstSequence ?? 0, transactional: !!transactionalId }),
          })),
        }));
        let size = stringSize(transactionalId) + 2 + 4 + 4;
        for (const t of topics) {
          size += stringSize(t.topic) + 4;
          for (const b of t.batches) size += 4 + 4 + b.batch.size;
        }
        return new PlannedBody(size, (buf, at) => {
          at = writeString(buf, at, transactionalId);
          at = buf.writeInt16BE(acks, at);
          at = buf.writeInt32BE(timeout, at);
          at = buf.writeInt32BE(topics.length, at);
          for (const t of topics) {
            at = writeString(buf, at, t.topic);
            at = buf.writeInt32BE(t.batches.length, at);
            for (const b of t.batches) {
              at = buf.writeInt32BE(b.partition, at);
              at = buf.writeInt32BE(b.batch.size, at);
              at = b.batch.writeTo(buf, at);
            }
          }
          return at;
        }, lease);
      },
    };
  };
}

interface RequestArgs {
  correlationId: number;
  clientId: string | null;
  request: { apiKey: number; apiVersion: number; encode: () => unknown };
}
type FrameRequest = (args: RequestArgs) => Promise<{ buffer: Buffer }>;

/**
 * kafkajs's protocol/request.js — Size int32, then RequestHeader v1 (ApiKey int16, ApiVersion
 * int16, CorrelationId int32, ClientId NULLABLE_STRING) and the body — with a planned body
 * written once, in place. Any other body goes to kafkajs's function as it was encoded.
 */
export function makeFrameRequest(original: FrameRequest): FrameRequest {
  return async ({ correlationId, clientId, request }) => {
    const body = await request.encode();
    if (!(body instanceof PlannedBody)) {
      return original({ correlationId, clientId, request: { apiKey: request.apiKey, apiVersion: request.apiVersion, encode: async () => body } });
    }
    const id = clientId ?? null;
    const size = 2 + 2 + 4 + stringSize(id) + body.bodySize;
    // A borrowed buffer may be larger: the request is its first 4 + size bytes.
    const buf = body.lease ? body.lease.take(4 + size).subarray(0, 4 + size) : Buffer.allocUnsafe(4 + size);
    let at = buf.writeInt32BE(size, 0);
    at = buf.writeInt16BE(request.apiKey, at);
    at = buf.writeInt16BE(request.apiVersion, at);
    at = buf.writeInt32BE(correlationId, at);
    at = writeString(buf, at, id);
    body.writeAt(buf, at);
    return asEncoder(buf);
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
    // At or above the fetched offset (a compressed batch may start below it). Offsets rise within
    // a partition's records, so when the first is, all are: the list itself, not a copy of it.
    const atOrAbove = (m: FetchedMessage) => m.offset.length > n || (m.offset.length === n && m.offset >= fetchedOffset);
    const within = messages.length === 0 || atOrAbove(messages[0] as FetchedMessage) ? messages : messages.filter(atOrAbove);
    self.messagesWithinOffset = within;
    const kept = filterAborted({ messages: within, abortedTransactions });
    self.messages = kept.some((m) => m.isControlRecord) ? kept.filter((m) => !m.isControlRecord) : kept;
    return self;
  }
  Batch.prototype = Original.prototype;
  return Batch as unknown as BatchClass;
}

/** What `scheduleCheckPendingRequests` reads and sets of kafkajs's RequestQueue. */
interface RequestQueueState {
  pending: unknown[];
  /** Milliseconds since the epoch; -1 when never throttled. */
  throttledUntil: number;
  throttleCheckTimeoutId: ReturnType<typeof setTimeout> | null;
  checkPendingRequests(): void;
}
/** kafkajs's CHECK_PENDING_REQUESTS_INTERVAL (network/requestQueue/index.js, not exported). */
const CHECK_PENDING_EVERY_MS = 10;

/**
 * RequestQueue#scheduleCheckPendingRequests with kafkajs's contract for a queue where a request
 * waits — one timer at a time, due when the client-side throttle ends, else in 10 ms — and none for
 * an empty queue: push() schedules a check when a request has to wait, and an answer or a timeout
 * checks the queue at once (fulfillRequest, the socket request's timeout).
 */
export function scheduleCheckPendingRequests(this: RequestQueueState): void {
  if (this.throttleCheckTimeoutId || this.pending.length === 0) return;
  const untilUnthrottled = this.throttledUntil - Date.now();
  this.throttleCheckTimeoutId = setTimeout(() => {
    this.throttleCheckTimeoutId = null;
    this.checkPendingRequests();
  }, untilUnthrottled > 0 ? untilUnthrottled : CHECK_PENDING_EVERY_MS);
}

const require = createRequire(import.meta.url);
const path = (p: string) => require.resolve(`kafkajs/src/${p}`);
// Modules that load the ones replaced: if any is loaded already, kafkajs keeps its own versions.
const users = ['producer/sendMessages.js', 'protocol/requests/produce/v3/request.js', 'network/connection.js', 'protocol/requests/fetch/v4/decodeMessages.js', 'producer/partitioners/default/index.js', 'consumer/consumerGroup.js'];
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
const frameRequest = replaceModule<FrameRequest>('protocol/request.js', makeFrameRequest);
const batchDecoder = replaceModule<BatchDecoder>('protocol/recordBatch/v0/decoder.js', (original) => async (d: FetchDecoder) =>
  isPlainBatch(d) ? decodePlainBatch(d, (m) => new KafkaJSPartialMessageError(m)) : original(d),
);
const hash = replaceModule<(key: unknown) => number>('producer/partitioners/default/murmur2.js', () => murmur2);
// After murmur2's: kafkajs's own DefaultPartitioner (kept for the tests) then hashes with ours.
const partitioner = replaceModule<() => (args: PartitionerArgs) => number>('producer/partitioners/default/index.js', () => createDefaultPartitioner);
const filterAborted = require(path('consumer/filterAbortedMessages.js')) as FilterAborted;
const batch = replaceModule<BatchClass>('consumer/batch.js', (original) => makeBatch(original, filterAborted));
// Last, after every replacement (connection.js loads request.js and more): the class whose send
// is wrapped, so that a produce request's buffer is reused once answered.
type SendArgs = { request?: { answered?: () => void } };
const Connection = require(path('network/connection.js')) as { prototype: { send: (args: SendArgs) => Promise<unknown> } };
const connectionSend = Connection.prototype.send;
if (!alreadyLoaded) Connection.prototype.send = answeredAfter(connectionSend);

// The queue's method is replaced on its class, whenever kafkajs was loaded: every queue made
// from now on, and those made already, use it.
export type RequestQueueClass = new (options: Record<string, unknown>) => RequestQueueState;
const RequestQueue = require(path('network/requestQueue/index.js')) as RequestQueueClass & { prototype: { scheduleCheckPendingRequests: (this: RequestQueueState) => void } };
const originalScheduleCheck = RequestQueue.prototype.scheduleCheckPendingRequests;
RequestQueue.prototype.scheduleCheckPendingRequests = scheduleCheckPendingRequests;

export const kafkajsPatch = {
  /** False when kafkajs was loaded before this module: it then runs its own versions. */
  active: grouping.took && produceV3.took && frameRequest.took && batchDecoder.took && hash.took && partitioner.took && batch.took,
  /** kafkajs's own functions, for the tests that compare. */
  original: grouping.original,
  originalProduceV3: produceV3.original,
  originalFrameRequest: frameRequest.original,
  originalConnectionSend: connectionSend,
  originalBatchDecoder: batchDecoder.original,
  originalMurmur2: hash.original,
  originalDefaultPartitioner: partitioner.original,
  originalBatch: batch.original,
  originalScheduleCheck,
  RequestQueue,
};
