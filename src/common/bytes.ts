/**
 * A growing byte buffer that text and bytes are written into, in place: the sink's insert body
 * (src/sink/rows.ts Body) and the producer's messages written from COPY rows
 * (src/tables/copy-rows.ts). Writers note where each piece starts and ends and take views of `buf`
 * only once the last is written (a view taken before it grows is of the old buffer).
 */
export class ByteBuffer {
  buf: Buffer;
  length = 0;

  constructor(capacity: number) {
    this.buf = Buffer.allocUnsafe(Math.max(capacity, 1024));
  }

  reserve(n: number): void {
    if (this.length + n <= this.buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.length + n));
    this.buf.copy(grown, 0, 0, this.length);
    this.buf = grown;
  }

  /** Text of code points below 0x80 only. */
  ascii(s: string): void {
    this.reserve(s.length);
    const buf = this.buf;
    let w = this.length;
    for (let i = 0; i < s.length; i++) buf[w++] = s.charCodeAt(i);
    this.length = w;
  }

  utf8(s: string): void {
    this.reserve(s.length * 3);
    this.length += this.buf.write(s, this.length, 'utf8');
  }

  byte(b: number): void {
    this.reserve(1);
    this.buf[this.length++] = b;
  }

  /**
   * `src[from, to)`. A loop for short runs: Buffer#copy costs ~100 ns a call in Node 20 whatever
   * the length, more than most fields of a row.
   */
  copy(src: Uint8Array, from: number, to: number): void {
    this.reserve(to - from);
    const buf = this.buf;
    let w = this.length;
    if (to - from > 48) {
      buf.set(src.subarray(from, to), w);
      w += to - from;
    } else for (let i = from; i < to; i++) buf[w++] = src[i] as number;
    this.length = w;
  }
}

/**
 * The UTF-8 length of `s` when it is short ASCII text (at most 64 characters, each below 0x80),
 * else -1. For such text (a message key) a loop beats Buffer's native calls, each ~100 ns in
 * Node 20 whatever the length (Buffer.byteLength, Buffer#write).
 */
export function shortAsciiLength(s: string): number {
  const n = s.length;
  if (n > 64) return -1;
  for (let i = 0; i < n; i++) if (s.charCodeAt(i) > 0x7f) return -1;
  return n;
}

/** Writes ASCII text `s` (shortAsciiLength(s) ≥ 0) at buf[at]; returns the position after it. */
export function writeShortAscii(buf: Uint8Array, at: number, s: string): number {
  for (let i = 0; i < s.length; i++) buf[at++] = s.charCodeAt(i);
  return at;
}
