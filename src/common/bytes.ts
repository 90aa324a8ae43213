/**
 * A growing byte buffer that text and bytes are written into, in place: the sink's insert body
 * (src/sink/rows.ts Body) and the producer's messages written from COPY rows
 * (src/tables/copy-rows.ts). Writers note where each piece starts and ends and take views of `buf`
 * only once the last is written (a view taken before it grows is of the old buffer).
 */
export class ByteBuffer {
  buf: Buffer;
  length = 0;

  /** With `lease`, its buffers (the first and any it grows into) are borrowed from the lease's pool. */
  constructor(
    capacity: number,
    private readonly lease?: Lease,
  ) {
    this.buf = lease ? lease.take(Math.max(capacity, 1024)) : Buffer.allocUnsafe(Math.max(capacity, 1024));
  }

  reserve(n: number): void {
    if (this.length + n <= this.buf.length) return;
    const size = Math.max(this.buf.length * 2, this.length + n);
    const grown = this.lease ? this.lease.take(size) : Buffer.allocUnsafe(size);
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

/**
 * The value of data[start, end) when it is an integer's canonical text — `0` or `-?[1-9][0-9]{0,14}`
 * (no sign but a minus, no leading zero, no `-0`: String() of the value gives the same text back);
 * NaN for any other text. The producer's key texts (copy-rows.ts) and the sink's integer
 * keys and fields (rows.ts) are read with it.
 */
export function canonicalInteger(data: Uint8Array, start: number, end: number): number {
  const negative = data[start] === 45;
  const first = negative ? start + 1 : start;
  const length = end - first;
  if (length < 1 || length > 15) return NaN;
  if (data[first] === 48) return length === 1 && !negative ? 0 : NaN;
  let n = 0;
  for (let i = first; i < end; i++) {
    const c = (data[i] as number) - 48;
    if (c < 0 || c > 9) return NaN;
    n = n * 10 + c;
  }
  return negative ? -n : n;
}

/**
 * Large buffers kept for reuse: a batch's COPY rows and messages (the producer), a write's insert
 * body (the sink). Each lives for one batch, tens of milliseconds, yet about half of them were
 * freed only by V8's next full collection (their Buffer objects had outlived two young ones):
 * 20–45 MB of array buffers in the streamer's RSS were such garbage at any time of the drain
 * (issue 14, goal 4). Reused, they stay few and live. A pool only keeps what `Lease#end` gives
 * back, at most `keep` buffers of at most `largest` bytes; anything else is left to the GC.
 */
export class BufferPool {
  private readonly free: Buffer[] = [];

  constructor(
    private readonly keep: number,
    private readonly largest: number,
  ) {}

  /** Buffers held for reuse, and their bytes. */
  get held(): { buffers: number; bytes: number } {
    return { buffers: this.free.length, bytes: this.free.reduce((n, b) => n + b.length, 0) };
  }

  /** A buffer of at least `size` bytes (its content is whatever it was): a free one that is large enough, else a new one. */
  take(size: number): Buffer {
    for (let i = this.free.length - 1; i >= 0; i--) {
      const b = this.free[i] as Buffer;
      if (b.length >= size) {
        this.free.splice(i, 1);
        return b;
      }
    }
    // Its own memory (not a slice of Node's shared pool), so that it can be handed on whole.
    return Buffer.allocUnsafeSlow(size);
  }

  give(buf: Buffer): void {
    if (buf.length > this.largest || buf.length < MIN_POOLED || buf.byteOffset !== 0 || buf.length !== buf.buffer.byteLength) return;
    if (this.free.includes(buf)) throw new Error('bug: a buffer given back to its pool twice');
    if (this.free.length < this.keep) {
      this.free.push(buf);
      return;
    }
    // Full: the larger buffers are kept (they fit the next batch without growing).
    let smallest = 0;
    for (let i = 1; i < this.free.length; i++) if ((this.free[i] as Buffer).length < (this.free[smallest] as Buffer).length) smallest = i;
    if (buf.length > (this.free[smallest] as Buffer).length) this.free[smallest] = buf;
  }
}

/** Buffers below this are not worth keeping: Node's own pool serves them. */
const MIN_POOLED = 16 * 1024;

/**
 * The buffers one batch borrowed from a pool, given back together by `end` — which its owner
 * calls only once nothing can read any of them again (no view of one is held by anyone): after
 * a batch committed, after a write's insert was answered. A batch that fails just drops its lease.
 */
export class Lease {
  private lent: Buffer[] = [];

  constructor(private readonly pool: BufferPool) {}

  take(size: number): Buffer {
    const b = this.pool.take(size);
    this.lent.push(b);
    return b;
  }

  end(): void {
    const lent = this.lent;
    this.lent = [];
    for (const b of lent) this.pool.give(b);
  }
}
