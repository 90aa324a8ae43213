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
