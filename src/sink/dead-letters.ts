/**
 * Dead letters: messages the consumer cannot store, sent to the dead-letter topic with their
 * original key, value and headers plus the reason. Whatever their number or size, they never halt
 * the consumer (issue 9, finding 2):
 *
 *  - sends are cut at SEND_BUDGET_BYTES, like the producer's: one bulk INSERT of 30,000 rows no
 *    ClickHouse column can hold made one ~3 MB send, which the broker refused (MESSAGE_TOO_LARGE)
 *    on every retry and after every restart;
 *  - a letter the topic refuses even alone (larger than its max.message.bytes, which may be smaller
 *    than the source topic's) is sent again with its value cut to half its size, then a quarter …
 *    (the original headers dropped last), marked `x-dlq-value-truncated: true` with the original
 *    size (`x-dlq-value-bytes`) and SHA-256 (`x-dlq-value-sha256`), so it is always recorded and
 *    the original can be recognised.
 *
 * At-least-once: a chunk that fails part-way is sent again letter by letter.
 */
import { createHash } from 'node:crypto';
import { chunkBy } from '../common/chunks.js';
import { StreamerError } from '../common/errors.js';

export interface DeadLetterRecord {
  key: Buffer | string | null;
  value: Buffer | null;
  headers: Record<string, Buffer | string | (Buffer | string)[] | undefined>;
}

export interface DeadLetterInput {
  key: Buffer | null;
  value: Buffer | null;
  headers: Record<string, Buffer | string | (Buffer | string)[] | undefined>;
  reason: string;
  topic: string;
  partition: number;
  offset: string;
  timestamp: string;
}

/** Same budget as the producer's sends: half the broker's default max.message.bytes (1 MiB). */
/** The ClickHouse table dead letters are recorded in (sql/clickhouse/0002), for verify and status. */
export const DEAD_LETTERS_TABLE = 'streamer_dead_letters';

export const SEND_BUDGET_BYTES = 512 * 1024;

const MAX_REASON_CHARS = 1000;

/** The record for the dead-letter topic: the original bytes plus x-dlq-* and x-original-* headers. */
export function deadLetterRecord(d: DeadLetterInput): DeadLetterRecord {
  return {
    key: d.key,
    value: d.value,
    headers: {
      ...d.headers,
      'x-dlq-reason': d.reason.length > MAX_REASON_CHARS ? `${d.reason.slice(0, MAX_REASON_CHARS)}…` : d.reason,
      'x-original-topic': d.topic,
      'x-original-partition': String(d.partition),
      'x-original-offset': d.offset,
      'x-original-timestamp': d.timestamp,
    },
  };
}

function headerBytes(headers: DeadLetterRecord['headers']): number {
  let n = 0;
  for (const [k, v] of Object.entries(headers)) {
    n += k.length;
    for (const x of v === undefined ? [] : Array.isArray(v) ? v : [v]) n += x.length;
  }
  return n;
}

/** Roughly what a record weighs in a produce request. */
export function recordBytes(r: DeadLetterRecord): number {
  return (r.key?.length ?? 0) + (r.value?.length ?? 0) + headerBytes(r.headers) + 64;
}

/** Cuts records into runs of at most `budget` bytes (a record larger than that goes alone). */
export function chunkRecords(records: readonly DeadLetterRecord[], budget = SEND_BUDGET_BYTES): DeadLetterRecord[][] {
  return chunkBy(records, budget, recordBytes);
}

/**
 * The next smaller form of a record the topic refused alone: its value cut to half of what it has
 * (marked, with the original's size and hash), then without the original headers; null when
 * nothing is left to cut.
 */
export function shrink(r: DeadLetterRecord, original: DeadLetterRecord): DeadLetterRecord | null {
  const value = r.value ?? Buffer.alloc(0);
  const ours = Object.fromEntries(Object.entries(r.headers).filter(([k]) => k.startsWith('x-dlq-') || k.startsWith('x-original-')));
  const marked = (v: Buffer, headers: DeadLetterRecord['headers']): DeadLetterRecord => ({
    key: r.key,
    value: v,
    headers: {
      ...headers,
      'x-dlq-value-truncated': 'true',
      'x-dlq-value-bytes': String(original.value?.length ?? 0),
      'x-dlq-value-sha256': createHash('sha256').update(original.value ?? Buffer.alloc(0)).digest('hex'),
    },
  });
  if (value.length > 0) return marked(value.subarray(0, Math.floor(value.length / 2)), r.headers);
  if (Object.keys(ours).length < Object.keys(r.headers).length) return marked(value, ours);
  return null;
}

/**
 * Sends `letters` with `send` (one produce request, acks=all), in chunks the broker accepts; a
 * letter refused alone is shrunk until it fits. `refused(err)` says whether an error is the broker
 * refusing the record itself (MESSAGE_TOO_LARGE and kin) rather than being unavailable — only those
 * are worked around here; any other error is thrown for the caller's retry loop.
 */
export async function sendDeadLetters(
  letters: readonly DeadLetterInput[],
  send: (records: DeadLetterRecord[]) => Promise<void>,
  refused: (err: unknown) => boolean,
  onTruncated?: (letter: DeadLetterInput, bytesSent: number) => void,
): Promise<void> {
  const records = letters.map(deadLetterRecord);
  const letterOf = new Map(records.map((r, i) => [r, letters[i] as DeadLetterInput]));
  for (const chunk of chunkRecords(records)) {
    try {
      await send(chunk);
      continue;
    } catch (err) {
      if (!refused(err)) throw err;
    }
    for (const original of chunk) {
      for (let r: DeadLetterRecord | null = original; ; ) {
        try {
          await send([r]);
          if (r !== original) onTruncated?.(letterOf.get(original) as DeadLetterInput, r.value?.length ?? 0);
          break;
        } catch (err) {
          if (!refused(err)) throw err;
          r = shrink(r, original);
          if (r === null) {
            // Refused even empty: the topic's max.message.bytes is below the headers themselves.
            // Retrying cannot help; stop with the reason rather than loop or drop the letter.
            throw new StreamerError(`the dead-letter topic refuses even an empty dead letter (${(err as Error).message}) — raise its max.message.bytes`, { cause: err });
          }
        }
      }
    }
  }
}
