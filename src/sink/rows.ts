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
import { ByteBuffer } from '../common/bytes.js';
import type { ChCodec } from '../tables/ch-types.js';
import { Refused } from '../tables/ch-types.js';
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

export interface Row<T> {
  key: string; // the key's canonical texts, joined: identifies the key within the batch
  partition: number;
  offset: string;
  /** The key columns' values, as JSON.parse gives them (their SQL literals are made for a lookup only). */
  keyValues: unknown[];
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

/** What follows a line's version: `\t<deleted>\t<partition>\t<offset>\t<ingested at>\n`. */
export function writeLineEnd(body: Body, isDelete: boolean, partition: number, offset: string, ingestedAt: string): void {
  body.ascii(isDelete ? '\t1\t' : '\t0\t');
  body.ascii(String(partition));
  body.byte(9);
  body.ascii(offset);
  body.byte(9);
  body.ascii(ingestedAt);
  body.byte(10);
}

/** The key's canonical texts, joined: one key per row within a batch. */
export function keyText(keys: readonly Column[], keyValues: readonly unknown[]): string {
  if (keyValues.length === 1) return (keys[0] as Column).codec.canon(keyValues[0]);
  return keys.map((k, i) => k.codec.canon(keyValues[i])).join('\u0000');
}

const QUOTE = 34;
const isDigit = (c: number | undefined) => c !== undefined && c >= 48 && c <= 57;

/** A message shape the sink has learnt, mapped onto the table's columns. */
export class LearntShape {
  /** Per column (in `columns` order): the shape's member of it, -1 when the shape lacks it. */
  private readonly members: number[];
  /** Per key column: its member. */
  private readonly keyMembers: number[];
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
    const keyValues = new Array<unknown>(this.keyMembers.length);
    for (let k = 0; k < keyValues.length; k++) {
      const v = tokenValue(this.text(value, this.keyMembers[k] as number));
      if (v === null) return null;
      keyValues[k] = v;
    }
    const start = body.length;
    if (!this.writeFields(value, body, read.isDelete)) {
      body.length = start;
      return null;
    }
    body.copy(value, read.versionStart, read.versionEnd);
    writeLineEnd(body, read.isDelete, partition, offset, ingestedAt);
    return { key: keyText(this.keys, keyValues), partition, offset, keyValues, version, start, end: body.length, ref };
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
      body.ascii(c.nullFlag ? (isNull ? '\t1\t' : '\t0\t') : '\t');
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
    // (0|-?[1-9]\d{0,14}), bare or as a string
    const from = quoted ? s + 1 : s;
    const to = quoted ? e - 1 : e;
    let i = from;
    const negative = v[i] === 45;
    if (negative) i++;
    if (to - i < 1 || to - i > 15 || (v[i] === 48 && (to - i > 1 || negative))) return false;
    let n = 0;
    for (; i < to; i++) {
      const c = v[i] as number;
      if (c < 48 || c > 57) return false;
      n = n * 10 + (c - 48);
    }
    if (negative) n = -n;
    if (n < fast.min || n > fast.max) return false;
    body.copy(v, from, to);
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
