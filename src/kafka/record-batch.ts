/**
 * Kafka's record batch (magic 2, uncompressed) written straight into one buffer: the producer's
 * replacement for kafkajs 2.2.4's encoder of a produce request's partition data (installed by
 * kafkajs-patch.ts).
 *
 * kafkajs makes, per message, a `Record` with its own `Encoder` (a zero-filled 512-byte buffer),
 * a temporary Buffer per varint, `Long` objects for the timestamp delta, then copies every record
 * into a growing batch encoder, that into another for the CRC, and that into the request: two
 * thirds of the producer's CPU in the backlog drain (bench/README.md "Profiles"). This computes
 * the batch's size first, allocates once and writes each field in place. The bytes are the same
 * as kafkajs's, field for field (test/unit/record-batch.test.ts compares both on the same input).
 *
 * RecordBatch => FirstOffset int64, Length int32, PartitionLeaderEpoch int32, Magic int8,
 *   CRC uint32 (CRC-32C of everything after it), Attributes int16, LastOffsetDelta int32,
 *   FirstTimestamp int64, MaxTimestamp int64, ProducerId int64, ProducerEpoch int16,
 *   FirstSequence int32, Records [Record]
 * Record => Length varint, Attributes int8, TimestampDelta varlong, OffsetDelta varint,
 *   Key varint-bytes, Value varint-bytes, Headers [varint-string key, varint-bytes value]
 */
import { shortAsciiLength, writeShortAscii } from '../common/bytes.js';
import { crc32c } from './crc32c.js';

/** A message as kafkajs hands it to the encoder (after its own validation). */
export interface BatchMessage {
  key?: Buffer | string | null;
  value: Buffer | string | null;
  /** Milliseconds since the epoch, as text (kafkajs's form) or a number. */
  timestamp?: string | number | null;
  headers?: Record<string, Buffer | string | null | undefined | Array<Buffer | string>>;
}

export interface BatchArgs {
  messages: readonly BatchMessage[];
  /** bigint-like: kafkajs passes a Long, a number or a string. */
  producerId: { toString(): string } | number | string;
  producerEpoch: number;
  firstSequence: number;
  transactional: boolean;
  /** The time given to messages without a timestamp (kafkajs: Date.now() per partition). */
  now?: number;
}


const MAGIC = 2;
const TRANSACTIONAL = 16;
/** From PartitionLeaderEpoch to FirstSequence, and the record count. */
const HEADER_BYTES = 4 + 1 + 4 + 2 + 4 + 8 + 8 + 8 + 2 + 4 + 4;
/** Where the CRC-covered part starts: after FirstOffset, Length, PartitionLeaderEpoch, Magic, CRC. */
const CRC_FROM = 8 + 4 + 4 + 1 + 4;

/** Zig-zag of a 32-bit integer, as an unsigned number. */
const zigzag32 = (v: number) => ((v << 1) ^ (v >> 31)) >>> 0;

/** Zig-zag of a safe integer (a timestamp delta), as a non-negative number. */
const zigzag64 = (v: number) => (v >= 0 ? v * 2 : -v * 2 - 1);

function uvarintSize(z: number): number {
  let n = 1;
  while (z >= 128) {
    z = Math.floor(z / 128);
    n++;
  }
  return n;
}

function writeUVarint(buf: Buffer, at: number, z: number): number {
  while (z >= 128) {
    buf[at++] = (z % 128) | 128;
    z = Math.floor(z / 128);
  }
  buf[at++] = z;
  return at;
}

const varintSize = (v: number) => uvarintSize(zigzag32(v));
const writeVarint = (buf: Buffer, at: number, v: number) => writeUVarint(buf, at, zigzag32(v));

/**
 * A key, value or header as it came: a Buffer, or text written straight into the batch as UTF-8
 * (kafkajs's rule for anything not a Buffer; no Buffer made per message); null as length -1.
 */
type Payload = Buffer | string | null;
const payloadOf = (v: Buffer | string | number | null | undefined): Payload => (v === null || v === undefined ? null : Buffer.isBuffer(v) ? v : String(v));
const payloadLength = (p: Payload) => (p === null ? -1 : typeof p === 'string' ? textLength(p) : p.length);
const textLength = (s: string) => {
  const n = shortAsciiLength(s);
  return n >= 0 ? n : Buffer.byteLength(s, 'utf8');
};
/** Bytes of a varint-length-prefixed payload of `length` bytes (-1: null). */
const payloadSize = (length: number) => varintSize(length) + Math.max(0, length);

function writePayload(buf: Buffer, at: number, p: Payload, length: number = payloadLength(p)): number {
  at = writeVarint(buf, at, length);
  if (p === null) return at;
  // As many UTF-8 bytes as UTF-16 units: ASCII only.
  if (typeof p === 'string') {
    if (length === p.length && length <= 64) writeShortAscii(buf, at, p);
    else buf.write(p, at, length, 'utf8');
  }
  else p.copy(buf, at);
  return at + length;
}

/** kafkajs's flattening of headers: an array value is one header per element. */
function headerPairs(headers: BatchMessage['headers']): Array<[Payload, Payload]> {
  const out: Array<[Payload, Payload]> = [];
  if (!headers) return out;
  for (const k of Object.keys(headers)) {
    const v = headers[k];
    if (Array.isArray(v)) for (const e of v) out.push([k, payloadOf(e)]);
    else out.push([k, payloadOf(v)]);
  }
  return out;
}

/** Writes a signed 64-bit integer given as anything BigInt() reads. */
function writeInt64(buf: Buffer, at: number, v: { toString(): string } | number | string): void {
  buf.writeBigInt64BE(BigInt(typeof v === 'number' ? v : v.toString()), at);
}

/**
 * One partition's record batch, from FirstOffset to the last record: what kafkajs's
 * `RecordBatch(...)` encodes for the same messages, sequence and producer.
 */
export function encodeRecordBatch(args: BatchArgs): Buffer {
  const batch = planRecordBatch(args);
  const buf = Buffer.allocUnsafe(batch.size);
  batch.writeTo(buf, 0);
  return buf;
}

/** A record batch measured but not written yet: `size` bytes, written by `writeTo` at `at`. */
export interface PlannedBatch {
  readonly size: number;
  /** Writes the batch at `at` (its CRC included); returns where it ends. */
  writeTo(buf: Buffer, at: number): number;
}

/**
 * The record batch of `encodeRecordBatch`, sized first so that its caller can write it straight
 * into a larger buffer (the produce request's, kafkajs-patch.ts) instead of copying it there.
 */
export function planRecordBatch(args: BatchArgs): PlannedBatch {
  const { messages } = args;
  const now = args.now ?? Date.now();
  // kafkajs: first and max timestamp are the first and last of the messages' timestamps sorted
  // as text (Array#sort's default), or now when none has one. The same, in one pass.
  let first: string | number | null = null;
  let max: string | number | null = null;
  for (const m of messages) {
    const t = m.timestamp;
    if (t === null || t === undefined) continue;
    if (first === null || String(t) < String(first)) first = t;
    if (max === null || String(t) > String(max)) max = t;
  }
  const firstTs = first ?? now;
  const maxTs = max ?? now;
  const firstMs = Number(firstTs);

  const n = messages.length;
  const keys = new Array<Payload>(n);
  const values = new Array<Payload>(n);
  const keyLengths = new Array<number>(n);
  const valueLengths = new Array<number>(n);
  const deltas = new Array<number>(n);
  const bodySizes = new Array<number>(n);
  const headers = new Array<Array<[Payload, Payload]> | null>(n);
  let recordsBytes = 0;
  for (let i = 0; i < n; i++) {
    const m = messages[i] as BatchMessage;
    const key = payloadOf(m.key);
    const value = payloadOf(m.value);
    const keyLength = payloadLength(key);
    const valueLength = payloadLength(value);
    // kafkajs: (message.timestamp || now) - firstTimestamp, in JavaScript numbers.
    const delta = Number(m.timestamp || now) - firstMs;
    const hs = m.headers && Object.keys(m.headers).length > 0 ? headerPairs(m.headers) : null;
    let body = 1 + uvarintSize(zigzag64(delta)) + varintSize(i) + payloadSize(keyLength) + payloadSize(valueLength);
    if (hs === null) body += varintSize(0);
    else {
      body += varintSize(hs.length);
      for (const [hk, hv] of hs) body += payloadSize(payloadLength(hk)) + payloadSize(payloadLength(hv));
    }
    keys[i] = key;
    values[i] = value;
    keyLengths[i] = keyLength;
    valueLengths[i] = valueLength;
    deltas[i] = delta;
    bodySizes[i] = body;
    headers[i] = hs;
    recordsBytes += varintSize(body) + body;
  }

  const total = 8 + 4 + HEADER_BYTES + recordsBytes;
  const writeTo = (buf: Buffer, start: number): number => {
    let at = start;
    buf.writeBigInt64BE(0n, at); // FirstOffset
    buf.writeInt32BE(total - 12, at + 8); // Length: the bytes after it
    buf.writeInt32BE(0, at + 12); // PartitionLeaderEpoch
    buf.writeInt8(MAGIC, at + 16);
    at = start + CRC_FROM;
    buf.writeInt16BE(args.transactional ? TRANSACTIONAL : 0, at); // Attributes: no compression, create time
    buf.writeInt32BE(n - 1, at + 2); // LastOffsetDelta
    writeInt64(buf, at + 6, firstTs);
    writeInt64(buf, at + 14, maxTs);
    writeInt64(buf, at + 22, args.producerId);
    buf.writeInt16BE(args.producerEpoch, at + 30);
    buf.writeInt32BE(args.firstSequence, at + 32);
    buf.writeInt32BE(n, at + 36);
    at += 40;
    for (let i = 0; i < n; i++) {
      at = writeVarint(buf, at, bodySizes[i] as number);
      buf[at++] = 0; // Attributes
      at = writeUVarint(buf, at, zigzag64(deltas[i] as number));
      at = writeVarint(buf, at, i);
      at = writePayload(buf, at, keys[i] as Payload, keyLengths[i] as number);
      at = writePayload(buf, at, values[i] as Payload, valueLengths[i] as number);
      const hs = headers[i];
      if (!hs) at = writeVarint(buf, at, 0);
      else {
        at = writeVarint(buf, at, hs.length);
        for (const [hk, hv] of hs) {
          at = writePayload(buf, at, hk);
          at = writePayload(buf, at, hv);
        }
      }
    }
    if (at !== start + total) throw new Error(`record batch: wrote ${at - start} bytes of ${total}`);
    buf.writeUInt32BE(crc32c(buf.subarray(start + CRC_FROM, at)), start + CRC_FROM - 4);
    return at;
  };
  return { size: total, writeTo };
}

// ------------------------------------------------------------------------------------ decoding

/** kafkajs's Decoder, as far as the record batch decoder uses it. */
export interface FetchDecoder {
  buffer: Buffer;
  offset: number;
}

export interface DecodedRecord {
  magicByte: number;
  attributes: number;
  timestamp: string;
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
  headers: Record<string, Buffer | null | Array<Buffer | null>>;
  isControlRecord: boolean;
  batchContext: Record<string, unknown>;
}

/**
 * A record read in place: its key and value are views of the fetch's bytes made when read, not
 * two Buffer objects made for every record (~180 bytes of garbage each). The consumer reads the
 * value's bytes where they are (`bytes`, `valueAt`, `valueEnd`) and never makes the view.
 */
export class FetchedRecord implements DecodedRecord {
  constructor(
    readonly magicByte: number,
    readonly attributes: number,
    readonly timestamp: string,
    readonly offset: string,
    readonly headers: DecodedRecord['headers'],
    readonly isControlRecord: boolean,
    readonly batchContext: Record<string, unknown>,
    /** The fetch response's bytes, and the key's and value's spans in them (a start of -1: null). */
    readonly bytes: Buffer,
    readonly keyAt: number,
    readonly keyEnd: number,
    readonly valueAt: number,
    readonly valueEnd: number,
  ) {}

  /** Where it was fetched from: set by the consumer when it takes the record (`received`); declared here so that every record has one hidden class. */
  topic = '';
  partition = -1;

  /** The record as the consumer's message (src/sink/consumer.ts InboundMessage): itself, its topic and partition set. */
  received(topic: string, partition: number): this {
    this.topic = topic;
    this.partition = partition;
    return this;
  }

  /** Itself: the sink's reference to the message (SinkInput.ref). */
  get ref(): this {
    return this;
  }

  get key(): Buffer | null {
    return this.keyAt < 0 ? null : this.bytes.subarray(this.keyAt, this.keyEnd);
  }

  get value(): Buffer | null {
    return this.valueAt < 0 ? null : this.bytes.subarray(this.valueAt, this.valueEnd);
  }
}

/** The headers of every record without any (the streamer's own messages): one frozen object, not one per record. */
const NO_HEADERS: DecodedRecord['headers'] = Object.freeze({});

const TIMESTAMP_TYPE_LOG_APPEND = 0x8;
const TRANSACTIONAL_FLAG = 0x10;
const CONTROL_FLAG = 0x20;
const COMPRESSION_MASK = 0x7;

/** An int64 given as text plus a small delta, as text: what kafkajs's Long.add().toString() gives. */
function addToInt64(base: string, baseNumber: number, delta: number): string {
  const sum = baseNumber + delta;
  return Number.isSafeInteger(baseNumber) && Number.isSafeInteger(sum) ? String(sum) : (BigInt(base) + BigInt(delta)).toString();
}

/**
 * Whether the batch at the decoder's position is one this decoder reads: uncompressed. (The
 * attributes sit 21 bytes in; a compressed batch goes to kafkajs's own decoder.)
 */
export function isPlainBatch(d: FetchDecoder): boolean {
  return d.buffer.length >= d.offset + 23 && (d.buffer.readInt16BE(d.offset + 21) & COMPRESSION_MASK) === 0;
}

/**
 * kafkajs's record batch decoder (recordBatch/v0/decoder.js) for an uncompressed batch, reading
 * the records in place: the same fields, read for read (the unit test compares both), without a
 * Decoder and a Buffer slice per record (FetchedRecord makes its key and value views when they are
 * read) and without Long arithmetic for each record's offset and timestamp. `partial` builds
 * kafkajs's KafkaJSPartialMessageError, which its caller looks for.
 */
export function decodePlainBatch(d: FetchDecoder, partial: (message: string) => Error): Record<string, unknown> & { records: DecodedRecord[] } {
  const buf = d.buffer;
  const start = d.offset;
  const firstOffset = buf.readBigInt64BE(start).toString();
  const length = buf.readInt32BE(start + 8);
  const from = start + 12;
  d.offset = from + length;
  const remaining = Math.max(0, Math.min(buf.length, from + length) - from);
  if (remaining < length) throw partial(`Tried to decode a partial record batch: remainingBytes(${remaining}) < recordBatchLength(${length})`);
  const partitionLeaderEpoch = buf.readInt32BE(from);
  const magicByte = buf.readInt8(from + 4);
  const attributes = buf.readInt16BE(from + 9);
  const lastOffsetDelta = buf.readInt32BE(from + 11);
  const firstTimestamp = buf.readBigInt64BE(from + 15).toString();
  const maxTimestamp = buf.readBigInt64BE(from + 23).toString();
  const producerId = buf.readBigInt64BE(from + 31).toString();
  const producerEpoch = buf.readInt16BE(from + 39);
  const firstSequence = buf.readInt32BE(from + 41);
  const recordContext = {
    firstOffset,
    firstTimestamp,
    partitionLeaderEpoch,
    inTransaction: (attributes & TRANSACTIONAL_FLAG) > 0,
    isControlBatch: (attributes & CONTROL_FLAG) > 0,
    lastOffsetDelta,
    producerId,
    producerEpoch,
    firstSequence,
    maxTimestamp,
    timestampType: (attributes & TIMESTAMP_TYPE_LOG_APPEND) > 0 ? 1 : 0,
  };
  const batchContext = { ...recordContext, magicByte };
  const logAppend = recordContext.timestampType === 1 && Boolean(maxTimestamp);
  const firstOffsetN = Number(firstOffset);
  const firstTimestampN = Number(firstTimestamp);
  const count = buf.readInt32BE(from + 45);
  const records: DecodedRecord[] = count > 0 ? new Array<DecodedRecord>(count) : [];
  let at = from + 49;

  // kafkajs's varint reader, same arithmetic.
  const varint = (): number => {
    let b: number;
    let result = 0;
    let i = 0;
    do {
      b = buf[at++] as number;
      result += (b & 0x7f) << i;
      i += 7;
    } while (b >= 0x80);
    return (result >>> 1) ^ -(result & 1);
  };
  // A zig-zag varlong as a Number (exact below 2^53: a timestamp delta).
  const varlong = (): number => {
    let b: number;
    let z = 0;
    let scale = 1;
    do {
      b = buf[at++] as number;
      z += (b & 0x7f) * scale;
      scale *= 128;
    } while (b >= 0x80);
    return z % 2 === 0 ? z / 2 : -(z + 1) / 2;
  };
  const bytes = (): Buffer | null => {
    const n = varint();
    if (n === -1) return null;
    const b = buf.subarray(at, at + n);
    at += n;
    return b;
  };
  // A key's or value's span: its start (-1 for null) is returned, its end left in `spanEnd`.
  let spanEnd = 0;
  const span = (): number => {
    const n = varint();
    if (n === -1) return -1;
    const from = at;
    at += n;
    spanEnd = at;
    return from;
  };

  for (let r = 0; r < count; r++) {
    const size = varint();
    const end = at + size;
    const recordAttributes = buf.readInt8(at++);
    const timestampDelta = varlong();
    const offsetDelta = varint();
    const keyAt = span();
    const keyEnd = spanEnd;
    const valueAt = span();
    const valueEnd = spanEnd;
    const nHeaders = varint();
    const headers: DecodedRecord['headers'] = nHeaders === 0 ? NO_HEADERS : {};
    for (let h = 0; h < nHeaders; h++) {
      const k = bytes();
      const hk = k === null ? 'null' : k.toString('utf8');
      const hv = bytes();
      const cur = headers[hk];
      headers[hk] = cur === undefined ? hv : Array.isArray(cur) ? [...cur, hv] : [cur, hv];
    }
    at = end;
    records[r] = new FetchedRecord(
      magicByte,
      recordAttributes,
      // (A producer's batch shares one timestamp: delta 0, the batch's text itself, not a copy.)
      logAppend ? maxTimestamp : timestampDelta === 0 ? firstTimestamp : addToInt64(firstTimestamp, firstTimestampN, timestampDelta),
      addToInt64(firstOffset, firstOffsetN, offsetDelta),
      headers,
      recordContext.isControlBatch,
      batchContext,
      buf,
      keyAt,
      keyEnd,
      valueAt,
      valueEnd,
    );
  }
  return { ...recordContext, records };
}
