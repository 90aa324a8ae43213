/**
 * Kafka's murmur2 (the Java client's Utils.murmur2, which picks a keyed message's partition) in
 * 32-bit arithmetic. kafkajs 2.2.4 computes it with a `Long` object per operation — ~10 % of the
 * producer's CPU in the backlog drain (issue 14 profile) — and then uses only the low 32 bits, so
 * Math.imul gives the same result (test/unit/record-batch.test.ts compares both on random keys).
 * Installed in kafkajs's place by kafkajs-patch.ts: a key's partition does not change.
 */
import { shortAsciiLength, writeShortAscii } from '../common/bytes.js';

const SEED = 0x9747b28c;
const M = 0x5bd1e995;
/** Strings are written here rather than into a new Buffer each (keys are short). */
let scratch = Buffer.allocUnsafe(1024);

export function murmur2(key: Buffer | string | number): number {
  let data: Buffer;
  let length: number;
  if (Buffer.isBuffer(key)) {
    data = key;
    length = key.length;
  } else {
    const text = String(key);
    if (text.length * 3 > scratch.length) scratch = Buffer.allocUnsafe(text.length * 3);
    data = scratch;
    length = shortAsciiLength(text) >= 0 ? writeShortAscii(scratch, 0, text) : scratch.write(text, 0, 'utf8');
  }
  let h = (SEED ^ length) | 0;
  const whole = length & ~3;
  for (let i = 0; i < whole; i += 4) {
    let k = (data[i] as number) | ((data[i + 1] as number) << 8) | ((data[i + 2] as number) << 16) | ((data[i + 3] as number) << 24);
    k = Math.imul(k, M);
    k ^= k >>> 24;
    k = Math.imul(k, M);
    h = Math.imul(h, M) ^ k;
  }
  const tail = length & 3;
  if (tail > 0) {
    if (tail === 3) h ^= (data[whole + 2] as number) << 16;
    if (tail >= 2) h ^= (data[whole + 1] as number) << 8;
    h ^= data[whole] as number;
    h = Math.imul(h, M);
  }
  h ^= h >>> 13;
  h = Math.imul(h, M);
  h ^= h >>> 15;
  return h | 0;
}
