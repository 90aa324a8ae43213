/**
 * Rows read with `COPY (…) TO STDOUT` (text format) kept as their bytes, and their upsert messages
 * written from those bytes: the producer's backlog path (issue 14). Read as rows, node-postgres
 * made a string of every field and an object of every row, and the message was joined from
 * strings and encoded again as UTF-8 — about half the producer's CPU per row in the sweep.
 *
 * The message is the same, byte for byte, as the row path's (src/tables/codec.ts encodeFields with
 * the mappings' `encode`): a field is written from its bytes only when its text is plain (WireKind
 * in pg-types.ts says what that means per type) and the result is known to be the same; any other
 * field is read as the row path would have read it (the COPY escapes undone, UTF-8 decoded, JSON
 * parsed for `json`) and goes through the same `encode`. test/unit/copy-rows.test.ts compares both
 * paths on random values of every kind.
 *
 * COPY's text format: fields separated by a tab, a row ended by a newline, NULL as `\N`; in a
 * value, a backslash, newline, carriage return, tab, backspace, form feed and vertical tab are
 * written `\\ \n \r \t \b \f \v`, and nothing else is escaped (PostgreSQL's documentation: "COPY TO
 * will never emit an octal or hex-digits backslash sequence").
 */
import { ByteBuffer, canonicalInteger, type Lease } from '../common/bytes.js';
import type { WireKind } from './pg-types.js';

const TAB = 9;
const NEWLINE = 10;
const BACKSLASH = 92;
const QUOTE = 34;

/** One batch's rows, copied out of node-postgres's read buffer (it reuses it), with where each field starts and ends. */
export class CopyRows {
  private data: Buffer;
  private used = 0;
  /** Per row: the start of each field, then the end of the last one (`fields` + 1 numbers). */
  private bounds = new Int32Array(1024);
  private rows = 0;
  /**
   * Rows added but not copied yet: `runSrc[runFrom, runTo)`, to land at `data[runAt]` — consecutive
   * CopyData messages of one buffer (with their 5-byte headers between them), copied at once.
   */
  private runSrc: Buffer | null = null;
  private runFrom = 0;
  private runTo = 0;
  private runAt = 0;

  /** With `lease`, its buffers are borrowed from the lease's pool (bytes.ts). */
  constructor(
    readonly fields: number,
    private readonly lease?: Lease,
  ) {
    this.data = this.allocate(64 * 1024);
  }

  private allocate(size: number): Buffer {
    return this.lease ? this.lease.take(size) : Buffer.allocUnsafe(size);
  }

  get count(): number {
    this.settled();
    return this.rows;
  }

  /** Bytes of the rows held. */
  get size(): number {
    this.settled();
    return this.used;
  }

  /**
   * A row as a CopyData message carries it (the newline included): `src[from, to)`. Throws if it
   * does not have `fields` fields. With `more` (copy-out.ts: the next row comes from the same
   * buffer before it can change) its bytes are copied with the next rows', in one copy: a
   * Buffer#copy per row made a view of its source each time (Node 20), ~1 % of the drain's streamer
   * CPU. Its tabs are found by a loop: Buffer#indexOf is a native call per field.
   */
  add(src: Buffer, from: number, to: number, more = false): void {
    if (this.runSrc !== null && (src !== this.runSrc || from < this.runTo)) this.flush();
    if (this.runSrc === null) {
      this.runSrc = src;
      this.runFrom = from;
      this.runAt = this.used;
    }
    const base = this.runAt + (from - this.runFrom);
    const length = to - from;
    if (base + length > this.data.length) {
      const bigger = this.allocate(Math.max(this.data.length * 2, base + length));
      this.data.copy(bigger, 0, 0, this.runAt); // the run lands later
      this.data = bigger;
    }
    this.runTo = to;
    this.used = base + length;
    const per = this.fields + 1;
    if ((this.rows + 1) * per > this.bounds.length) {
      const bigger = new Int32Array(Math.max(this.bounds.length * 2, (this.rows + 1) * per));
      bigger.set(this.bounds);
      this.bounds = bigger;
    }
    const at = this.rows * per;
    const last = to - (length > 0 && src[to - 1] === NEWLINE ? 1 : 0); // in src
    const bounds = this.bounds;
    const shift = base - from; // src position → data position
    let field = 0;
    bounds[at] = base;
    for (let i = from; i < last; i++) {
      if (src[i] !== TAB) continue;
      if (++field >= this.fields) break;
      bounds[at + field] = i + 1 + shift;
    }
    if (!more) this.flush();
    if (field !== this.fields - 1) throw new Error(`bug: a COPY row with ${field + 1} fields where ${this.fields} were expected`);
    bounds[at + this.fields] = last + shift + 1; // as if a tab followed the last field
    this.rows++;
  }

  /** Copies the rows added but not copied yet. */
  private flush(): void {
    if (this.runSrc === null) return;
    this.runSrc.copy(this.data, this.runAt, this.runFrom, this.runTo);
    this.runSrc = null;
  }

  /** Rows are read only once copied: a run left pending is a caller's bug (its source may have changed). */
  private settled(): void {
    if (this.runSrc !== null) throw new Error('bug: COPY rows read before their last row was added (more = true)');
  }

  start(row: number, field: number): number {
    return this.bounds[row * (this.fields + 1) + field] as number;
  }

  /** Where the field ends (its tab or newline). */
  end(row: number, field: number): number {
    return (this.bounds[row * (this.fields + 1) + field + 1] as number) - 1;
  }

  isNull(row: number, field: number): boolean {
    const s = this.start(row, field);
    return this.end(row, field) - s === 2 && this.data[s] === BACKSLASH && this.data[s + 1] === 78; // \N
  }

  /**
   * The field's value as node-postgres would have returned its text (null for NULL). An integer's
   * text written canonically (the producer's keys, most often) is made by String() of its value:
   * the same text, ~4× faster than decoding its bytes (Buffer#toString, ~140 ns a call in Node 20:
   * ~1.5 % of the drain's streamer CPU with a key per row).
   */
  text(row: number, field: number): string | null {
    const start = this.start(row, field);
    const end = this.end(row, field);
    const n = canonicalInteger(this.data, start, end);
    if (!Number.isNaN(n)) return String(n);
    if (this.isNull(row, field)) return null;
    return unescapeCopy(this.data, start, end);
  }

  /** The values of `n` fields from `field` on, as text() reads each (the key columns' text). */
  texts(row: number, field: number, n: number): string[] {
    return Array.from({ length: n }, (_, i) => this.text(row, field + i) as string);
  }

  /** The field is `t` (a boolean true). */
  isTrue(row: number, field: number): boolean {
    const s = this.start(row, field);
    return this.end(row, field) - s === 1 && this.data[s] === 116;
  }

  get bytes(): Buffer {
    return this.data;
  }
}

const ESCAPED: Record<number, string> = { 92: '\\', 110: '\n', 114: '\r', 116: '\t', 98: '\b', 102: '\f', 118: '\v' };

/** A COPY text field's value (its escapes undone, UTF-8 decoded). */
export function unescapeCopy(data: Buffer, start: number, end: number): string {
  let at = start;
  while (at < end && data[at] !== BACKSLASH) at++;
  if (at === end) return data.toString('utf8', start, end);
  const parts: Buffer[] = [];
  let from = start;
  for (let i = at; i < end; i++) {
    if (data[i] !== BACKSLASH) continue;
    parts.push(data.subarray(from, i));
    const c = ESCAPED[data[i + 1] as number];
    if (c === undefined) throw new Error(`bug: COPY escape \\${String.fromCharCode(data[i + 1] as number)} not expected from COPY TO`);
    parts.push(Buffer.from(c, 'latin1'));
    i++;
    from = i + 1;
  }
  parts.push(data.subarray(from, end));
  return Buffer.concat(parts).toString('utf8');
}

/** How a column of a table is written: its member start (`"id":`) as bytes, its kind, and the row path's encode. */
export interface ColumnWriter {
  prefix: Buffer;
  wire: WireKind;
  encode: (v: unknown) => string;
}

const TRUE = Buffer.from('true');
const FALSE = Buffer.from('false');
const NULL = Buffer.from('null');

/** Printable ASCII without a quote or backslash: the text is its own JSON string content. */
function plain(data: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    const b = data[i] as number;
    if (b < 32 || b > 126 || b === QUOTE || b === BACKSLASH) return false;
  }
  return true;
}

const isDigit = (b: number | undefined) => b !== undefined && b >= 48 && b <= 57;

/** `-?[0-9]+`: an integer's text (int2, int4). */
function digits(data: Buffer, start: number, end: number): boolean {
  let i = data[start] === 45 ? start + 1 : start;
  if (i >= end) return false;
  for (; i < end; i++) if (!isDigit(data[i])) return false;
  return true;
}

/**
 * `YYYY-MM-DD HH:MM:SS[.f{1,6}][+00]` written as normalizeTimestamp() + jsonText() write it
 * (`"YYYY-MM-DD HH:MM:SS.ffffff"`); false, writing nothing, for any other text.
 */
function writeTimestamp(out: ByteBuffer, data: Buffer, start: number, end: number): boolean {
  const n = end - start;
  if (n < 19) return false;
  for (let i = 0; i < 19; i++) {
    const b = data[start + i] as number;
    const want = i === 4 || i === 7 ? 45 : i === 10 ? 32 : i === 13 || i === 16 ? 58 : -1;
    if (want === -1 ? !isDigit(b) : b !== want) return false;
  }
  let i = start + 19;
  let fraction = 0;
  if (data[i] === 46 && i < end) {
    i++;
    while (i < end && isDigit(data[i]) && fraction < 7) {
      i++;
      fraction++;
    }
    if (fraction === 0 || fraction > 6) return false;
  }
  if (i < end) {
    if (end - i !== 3 || data[i] !== 43 || data[i + 1] !== 48 || data[i + 2] !== 48) return false; // +00
  }
  out.byte(QUOTE);
  out.copy(data, start, start + 19);
  out.byte(46);
  out.copy(data, start + 20, start + 20 + fraction);
  for (let k = fraction; k < 6; k++) out.byte(48);
  out.byte(QUOTE);
  return true;
}

/** Writes field `field` of row `row` as the row path's `encode` would; NULL as null. */
export function writeField(out: ByteBuffer, rows: CopyRows, row: number, field: number, w: ColumnWriter): void {
  const data = rows.bytes;
  const start = rows.start(row, field);
  const end = rows.end(row, field);
  if (rows.isNull(row, field)) return out.copy(NULL, 0, 4);
  switch (w.wire) {
    case 'digits':
      if (digits(data, start, end)) return out.copy(data, start, end);
      break;
    case 'bool':
      if (end - start === 1 && (data[start] === 116 || data[start] === 102)) return out.copy(data[start] === 116 ? TRUE : FALSE, 0, data[start] === 116 ? 4 : 5);
      break;
    case 'timestamp':
      if (writeTimestamp(out, data, start, end)) return;
      break;
    case 'string':
      if (plain(data, start, end)) {
        out.byte(QUOTE);
        out.copy(data, start, end);
        out.byte(QUOTE);
        return;
      }
      break;
    case 'json':
      break;
  }
  const text = unescapeCopy(data, start, end);
  out.utf8(w.encode(w.wire === 'json' ? JSON.parse(text) : text));
}

const OP_UPSERT = Buffer.from('"_op":"upsert","_version":');

/**
 * Row `row`'s upsert message, `{"a":1,…,"_op":"upsert","_version":7}` (encodeFields' bytes), its
 * columns in fields 0…N; returns where it starts (it ends at out.length). `version`: its text, or
 * the row's field that holds it (a bigint's text: digits only, written as they are).
 */
export function writeUpsert(out: ByteBuffer, rows: CopyRows, row: number, columns: readonly ColumnWriter[], version: string | number): number {
  const from = out.length;
  out.byte(123); // {
  for (let i = 0; i < columns.length; i++) {
    const w = columns[i] as ColumnWriter;
    out.copy(w.prefix, 0, w.prefix.length);
    writeField(out, rows, row, i, w);
    out.byte(44); // ,
  }
  out.copy(OP_UPSERT, 0, OP_UPSERT.length);
  if (typeof version === 'string') out.ascii(version);
  else out.copy(rows.bytes, rows.start(row, version), rows.end(row, version));
  out.byte(125); // }
  return from;
}

/**
 * About the bytes an upsert message adds to its row's COPY text: braces, names, quotes, commas,
 * `_op` and a version. Sized so that the buffer of upsertValues is not outgrown (and copied) on
 * an ordinary batch; a row that escapes more still fits, the buffer then grows.
 */
function upsertOverhead(columns: readonly ColumnWriter[]): number {
  let n = 2 + OP_UPSERT.length + 20;
  for (const w of columns) n += w.prefix.length + 3;
  return n;
}

/**
 * The upsert messages of rows `picks[i]` (a row index; -1: none) at `versions[i]` (or at the
 * version in field `versions` of each picked row), written into one buffer (borrowed from `lease`'s
 * pool if given): views of it (null where no row), taken once it has stopped growing.
 */
export function upsertValues(rows: CopyRows, columns: readonly ColumnWriter[], picks: ArrayLike<number>, versions: readonly string[] | number, lease?: Lease): Array<Buffer | null> {
  const out = new ByteBuffer(rows.size + rows.count * upsertOverhead(columns), lease);
  const spans = new Int32Array(picks.length * 2);
  for (let i = 0; i < picks.length; i++) {
    const r = picks[i] as number;
    if (r < 0) continue;
    spans[2 * i] = writeUpsert(out, rows, r, columns, typeof versions === 'number' ? versions : (versions[i] as string));
    spans[2 * i + 1] = out.length;
  }
  return Array.from({ length: picks.length }, (_, i) => ((picks[i] as number) < 0 ? null : out.buf.subarray(spans[2 * i], spans[2 * i + 1])));
}
