/**
 * The rows of one sink write, as the bytes of its TabSeparated insert (issue 14). Every row's line
 * is written once into the write's Body, and the insert sends those bytes: no string per row, no
 * joined string per insert, no UTF-8 encoding of it by the client.
 *
 * A message of a shape the sink has learnt (message-shapes.ts) becomes its line straight from its
 * bytes (LearntShape.row): a member is copied as it is when the column's type allows it
 * (ChCodec.fast: a string without escapes, a short integer, a timestamp), and otherwise read as
 * JSON.parse would read it and written by the column's codec, exactly as a decoded message is
 * (sink.ts, TableSink.row) — so either way gives the same bytes, which
 * test/unit/sink-fast-rows.test.ts holds them to. A value a codec refuses, or anything odd, makes
 * row() return null: the message then goes the slow way, which refuses it with its reason.
 */
import { ByteBuffer, canonicalInteger } from '../common/bytes.js';
import type { ChCodec } from '../tables/ch-types.js';
import { Refused, SHORT_INT } from '../tables/ch-types.js';
import { isRealDateTime } from '../tables/timestamps.js';
import { ESCAPED, HIGH, tokenValue, type MessageRead, type MessageShape } from './message-shapes.js';

export interface Column {
  name: string;
  codec: ChCodec;
  /** A nullable array's companion column (`<name>__is_null`), if the table has it: its field follows the column's. */
  nullFlag: string | null;
  /** A key column (a delete keeps its value). */
  key: boolean;
}

/**
 * A key's identity within a batch (rowKey): its columns' canonical texts, joined — or, for a table
 * keyed by one integer column, the Number of a canonical text of at most 15 digits. Either way a
 * key read from a message, decoded, or from ClickHouse's answer is the same value.
 */
export type RowKey = string | number;

export interface Row<T> {
  key: RowKey;
  partition: number;
  offset: string;
  /**
   * The key columns' values, as JSON.parse gives them (their SQL literals are made for a lookup
   * only); null when the key is one integer column read as its number: then `key` is its value.
   */
  keyValues: unknown[] | null;
  version: number;
  /** The row's line in its write's Body: bytes [start, end), its line feed included. */
  start: number;
  end: number;
  ref: T;
}

/** The TabSeparated body of one write (a ByteBuffer), and the bytes of some of its lines. */
export class Body extends ByteBuffer {
  /** The insert body of `rows` (lines of this Body): the written bytes as they are when the rows are all of them, in order. */
  of(rows: readonly Row<unknown>[]): Buffer {
    let whole = rows.length > 0 && (rows[0] as Row<unknown>).start === 0 && (rows[rows.length - 1] as Row<unknown>).end === this.length;
    for (let i = 1; whole && i < rows.length; i++) whole = (rows[i] as Row<unknown>).start === (rows[i - 1] as Row<unknown>).end;
    if (whole) return this.buf.subarray(0, this.length);
    let size = 0;
    for (const r of rows) size += r.end - r.start;
    const out = Buffer.allocUnsafe(size);
    let w = 0;
    for (const r of rows) w += this.buf.copy(out, w, r.start, r.end);
    return out;
  }
}

/**
 * What follows a line's version: `\t<deleted>\t<partition>\t<offset>\t<ingested at>\n`, written
 * in one pass (its texts are ASCII): four ascii() calls with their String(partition) were ~2 % of
 * the drain's streamer CPU.
 */
export function writeLineEnd(body: Body, isDelete: boolean, partition: number, offset: string, ingestedAt: string): void {
  const part = partition >= 0 && partition < 10 ? null : String(partition);
  body.reserve(6 + (part === null ? 1 : part.length) + offset.length + ingestedAt.length);
  const buf = body.buf;
  let w = body.length;
  buf[w++] = 9;
  buf[w++] = isDelete ? 49 : 48;
  buf[w++] = 9;
  if (part === null) buf[w++] = 48 + partition;
  else for (let i = 0; i < part.length; i++) buf[w++] = part.charCodeAt(i);
  buf[w++] = 9;
  for (let i = 0; i < offset.length; i++) buf[w++] = offset.charCodeAt(i);
  buf[w++] = 9;
  for (let i = 0; i < ingestedAt.length; i++) buf[w++] = ingestedAt.charCodeAt(i);
  buf[w++] = 10;
  body.length = w;
}

/** Whether the table is keyed by one integer column: its keys are then Numbers where they can be (RowKey). */
export function integerKey(keys: readonly Column[]): boolean {
  return keys.length === 1 && (keys[0] as Column).codec.fast?.kind === 'int';
}

/** The key of the keys' canonical texts `canon` (joined by NUL), as a RowKey. */
export function rowKey(intKey: boolean, canon: string): RowKey {
  return intKey && SHORT_INT.test(canon) ? Number(canon) : canon;
}

/** A row's key from its key columns' values: one key per row within a batch. */
export function keyOf(keys: readonly Column[], keyValues: readonly unknown[]): RowKey {
  if (keyValues.length === 1) return rowKey(integerKey(keys), (keys[0] as Column).codec.canon(keyValues[0]));
  return keys.map((k, i) => k.codec.canon(keyValues[i])).join('\u0000');
}

/** The key columns' values of a row (its number when keyValues is null). */
export function keyValuesOf(row: Row<unknown>): unknown[] {
  return row.keyValues ?? [row.key];
}

/**
 * `(0|-?[1-9]\d{0,14})` at v[s, e), bare or as a JSON string without escapes: its value, the
 * same Number as its canonical text's; NaN for anything else.
 */
function shortInt(v: Uint8Array, s: number, e: number): number {
  return v[s] === QUOTE ? canonicalInteger(v, s + 1, e - 1) : canonicalInteger(v, s, e);
}

const QUOTE = 34;
const isDigit = (c: number | undefined) => c !== undefined && c >= 48 && c <= 57;

/** A message shape the sink has learnt, mapped onto the table's columns. */
export class LearntShape {
  /** Per column (in `columns` order): the shape's member of it, -1 when the shape lacks it. */
  private readonly members: number[];
  /** Per key column: its member. */
  private readonly keyMembers: number[];
  /** The table is keyed by one integer column (integerKey). */
  private readonly intKey: boolean;
  private readonly read: MessageRead;

  constructor(
    private readonly shape: MessageShape,
    private readonly columns: readonly Column[],
    private readonly keys: readonly Column[],
  ) {
    const member = new Map(shape.fields.map((f, i) => [f, i]));
    this.members = columns.map((c) => member.get(c.name) ?? -1);
    this.keyMembers = keys.map((k) => member.get(k.name) ?? -1);
    if (this.keyMembers.includes(-1)) throw new Error('a learnt shape holds every key column');
    this.intKey = integerKey(keys);
    this.read = shape.newRead();
  }

  /** Whether `value` is of this shape. */
  matches(value: Uint8Array): boolean {
    return this.shape.read(value, this.read);
  }

  /**
   * The row of a message of this shape, value[from, to) (read where it is), its line written to
   * `body` — the same line TableSink.row() makes of the decoded message; null when the message is
   * not of this shape, or a value is refused or odd (the slow way then decides, and gives the reason).
   */
  row<T>(value: Buffer, from: number, to: number, body: Body, partition: number, offset: string, ingestedAt: string, ref: T): Row<T> | null {
    const read = this.read;
    if (!this.shape.read(value, read, from, to)) return null;
    let version = 0;
    for (let i = read.versionStart; i < read.versionEnd; i++) version = version * 10 + ((value[i] as number) - 48);
    if (!Number.isSafeInteger(version)) return null;
    // One integer key written plainly is its own key: no text, no array made for it.
    let key: RowKey = NaN;
    let keyValues: unknown[] | null = null;
    if (this.intKey && !((read.flags[this.keyMembers[0] as number] as number) & ESCAPED)) {
      const m = this.keyMembers[0] as number;
      key = shortInt(value, read.start[m] as number, read.end[m] as number);
    }
    if (Number.isNaN(key)) {
      keyValues = new Array<unknown>(this.keyMembers.length);
      for (let k = 0; k < keyValues.length; k++) {
        const v = tokenValue(this.text(value, this.keyMembers[k] as number));
        if (v === null) return null;
        keyValues[k] = v;
      }
    }
    const start = body.length;
    if (!this.writeFields(value, body, read.isDelete)) {
      body.length = start;
      return null;
    }
    body.copy(value, read.versionStart, read.versionEnd);
    writeLineEnd(body, read.isDelete, partition, offset, ingestedAt);
    // (The key's text only now: writeFields refused what its codec cannot read.)
    return { key: keyValues === null ? key : keyOf(this.keys, keyValues), partition, offset, keyValues, version, start, end: body.length, ref };
  }

  /** Member `m`'s JSON text. */
  private text(value: Buffer, m: number): string {
    return value.toString((this.read.flags[m] as number) & HIGH ? 'utf8' : 'latin1', this.read.start[m], this.read.end[m]);
  }

  private writeFields(value: Buffer, body: Body, isDelete: boolean): boolean {
    const read = this.read;
    const columns = this.columns;
    for (let j = 0; j < columns.length; j++) {
      const c = columns[j] as Column;
      const m = this.members[j] as number;
      let isNull: boolean;
      if (m < 0 || (isDelete && !c.key)) {
        body.ascii(c.codec.zero);
        isNull = true;
      } else if (value[read.start[m] as number] === 110 /* null */) {
        isNull = true;
        if (c.nullFlag) body.ascii('[]');
        else if (c.codec.nullable) body.ascii('\\N');
        else return false; // refused: the slow way words the reason
      } else {
        isNull = false;
        if (!writeFast(c.codec, value, read.start[m] as number, read.end[m] as number, read.flags[m] as number, body)) {
          let text: string;
          try {
            text = c.codec.write(tokenValue(this.text(value, m)));
          } catch (err) {
            if (err instanceof Refused) return false;
            throw err;
          }
          body.utf8(text);
        }
      }
      if (c.nullFlag) body.ascii(isNull ? '\t1\t' : '\t0\t');
      else body.byte(9);
    }
    return true;
  }
}

/**
 * Writes the member value[s, e) as its column's field straight from its bytes, when its codec's
 * fast form covers it; false (nothing written) otherwise.
 */
function writeFast(codec: ChCodec, v: Buffer, s: number, e: number, flags: number, body: Body): boolean {
  const fast = codec.fast;
  if (!fast || flags & ESCAPED) return false;
  const quoted = v[s] === QUOTE;
  if (fast.kind === 'string') {
    if (!quoted) return false;
    body.copy(v, s + 1, e - 1);
    return true;
  }
  if (fast.kind === 'int') {
    const n = shortInt(v, s, e);
    if (!(n >= fast.min && n <= fast.max)) return false; // NaN too
    body.copy(v, quoted ? s + 1 : s, quoted ? e - 1 : e);
    return true;
  }
  // a timestamp: 'YYYY-MM-DD HH:MM:SS' (or a 'T'), then '.' and 1–6 digits or nothing
  if (!quoted) return false;
  const t = s + 1;
  const n = e - 1 - t;
  if (n !== 19 && (n < 21 || n > 26)) return false;
  const year = digits(v, t, 4);
  const month = digits(v, t + 5, 2);
  const day = digits(v, t + 8, 2);
  const hour = digits(v, t + 11, 2);
  const minute = digits(v, t + 14, 2);
  const second = digits(v, t + 17, 2);
  if (year < 0 || month < 0 || day < 0 || hour < 0 || minute < 0 || second < 0) return false;
  const sep = v[t + 10];
  if (v[t + 4] !== 45 || v[t + 7] !== 45 || (sep !== 32 && sep !== 84) || v[t + 13] !== 58 || v[t + 16] !== 58) return false;
  if (n > 19 && (v[t + 19] !== 46 || digits(v, t + 20, n - 20) < 0)) return false;
  if (!isRealDateTime(year, month, day, hour, minute, second) || year < fast.minYear || year > fast.maxYear) return false;
  body.copy(v, t, t + 10);
  body.byte(32);
  body.copy(v, t + 11, t + 19);
  if (fast.scale > 0) {
    body.byte(46);
    body.reserve(fast.scale);
    for (let k = 0; k < fast.scale; k++) body.buf[body.length++] = 20 + k < n ? (v[t + 20 + k] as number) : 48;
  }
  return true;
}

/** Digits v[i, i + n) as a number, or -1 if any is not a digit. */
function digits(v: Uint8Array, i: number, n: number): number {
  let x = 0;
  for (let k = 0; k < n; k++) {
    const c = v[i + k];
    if (!isDigit(c)) return -1;
    x = x * 10 + ((c as number) - 48);
  }
  return x;
}
