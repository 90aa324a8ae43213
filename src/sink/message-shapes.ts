/**
 * The consumer's fast reading of a message (issue 14): its bytes are checked against a message
 * shape and its members located in place — no text made of the message, no JSON.parse into an
 * object per message (which, with the garbage it leaves, was the largest single cost of the
 * consumer after kafkajs's decoding). row-bytes.ts then writes the row's fields from those bytes.
 *
 * A shape is the order of a message's members, as the producer writes them (codec.ts): the
 * columns, then "_op", then "_version". The sink learns a shape from a message it has read the
 * slow way (JSON.parse), and from then on reads messages of that shape by it. Only flat JSON of
 * exactly that shape is read: no whitespace, values that are scalars (a string, a number, true,
 * false, null) or arrays of scalars, "_op" upsert or delete, "_version" a plain integer, and the
 * whole value valid UTF-8. Anything else — an object, a nested array, another order, an unknown
 * member, a truncate marker, a message of f141f4e, a malformed one — is not read and takes the
 * slow way, which decides (and explains any dead letter) exactly as before.
 *
 * `tokenValue` turns a member's text into the value JSON.parse gives, so the sink writes the same
 * bytes either way (test/unit/sink-fast-rows.test.ts compares them).
 */
import { isUtf8 } from 'node:buffer';

/** Flags of a member (MessageRead.flags): its text has a backslash escape / a byte above 0x7f. */
export const ESCAPED = 1;
export const HIGH = 2;

/** Where the members of the message last read are: reused for every message (no array per message). */
export interface MessageRead {
  /** Member i (the shape's fields[i]) spans value[start[i], end[i]). */
  readonly start: Int32Array;
  readonly end: Int32Array;
  /** ESCAPED | HIGH per member. */
  readonly flags: Uint8Array;
  /** The _version member's span (its digits). */
  versionStart: number;
  versionEnd: number;
  isDelete: boolean;
}

export interface MessageShape {
  /** The member names, in order, without _op and _version. */
  readonly fields: readonly string[];
  /** A MessageRead sized for this shape. */
  newRead(): MessageRead;
  /**
   * Reads a message value of this shape into `into`; false when it is not exactly of this shape.
   * The value is value[from, to) (a fetch's bytes, read where they are); `into` gets positions in
   * `value`.
   */
  read(value: Uint8Array, into: MessageRead, from?: number, to?: number): boolean;
}

const QUOTE = 34;
const BACKSLASH = 92;
const enc = (s: string) => new Uint8Array(Buffer.from(s, 'utf8'));
const OP = enc(',"_op":"');
const UPSERT = enc('upsert"');
const DELETE = enc('delete"');
const VERSION = enc(',"_version":');
const NULL = enc('null');
const TRUE = enc('true');
const FALSE = enc('false');
const isDigit = (c: number | undefined) => c !== undefined && c >= 48 && c <= 57;
const isHex = (c: number | undefined) => c !== undefined && ((c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102));

/** `lit` at `at`, before `end`: the position after it, or -1. */
function expect(v: Uint8Array, at: number, lit: Uint8Array, end: number): number {
  if (at < 0 || at + lit.length > end) return -1;
  for (let k = 0; k < lit.length; k++) if (v[at + k] !== lit[k]) return -1;
  return at + lit.length;
}

/**
 * Scans one JSON scalar at `at` (JSON's grammar: a number, a string with JSON's escapes and no raw
 * control character, true, false, null): the position after it, or -1. Adds what it saw of
 * ESCAPED and HIGH to `out.flags`.
 */
function scalar(v: Uint8Array, at: number, end: number, out: { flags: number }): number {
  if (at >= end) return -1;
  const c = v[at];
  if (c === QUOTE) {
    for (let i = at + 1; i < end; i++) {
      const b = v[i] as number;
      if (b === QUOTE) return i + 1;
      if (b < 32) return -1;
      if (b > 127) out.flags |= HIGH;
      else if (b === BACKSLASH) {
        out.flags |= ESCAPED;
        const e = v[++i];
        if (e === 117 /* u */) {
          if (i + 4 >= end || !(isHex(v[i + 1]) && isHex(v[i + 2]) && isHex(v[i + 3]) && isHex(v[i + 4]))) return -1;
          i += 4;
        } else if (e !== QUOTE && e !== BACKSLASH && e !== 47 && e !== 98 && e !== 102 && e !== 110 && e !== 114 && e !== 116) return -1;
      }
    }
    return -1;
  }
  if (c === 110) return expect(v, at, NULL, end);
  if (c === 116) return expect(v, at, TRUE, end);
  if (c === 102) return expect(v, at, FALSE, end);
  // -?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?
  let i = at;
  if (v[i] === 45) i++;
  if (v[i] === 48) i++;
  else if (isDigit(v[i])) while (isDigit(v[i])) i++;
  else return -1;
  if (v[i] === 46) {
    if (!isDigit(v[++i])) return -1;
    while (isDigit(v[i])) i++;
  }
  if (v[i] === 101 || v[i] === 69) {
    i++;
    if (v[i] === 43 || v[i] === 45) i++;
    if (!isDigit(v[i])) return -1;
    while (isDigit(v[i])) i++;
  }
  return i;
}

/** A member's value: a scalar, or a flat array of scalars (an array column). */
function member(v: Uint8Array, at: number, end: number, out: { flags: number }): number {
  if (v[at] !== 91 /* [ */) return scalar(v, at, end, out);
  let i = at + 1;
  if (v[i] === 93) return i + 1;
  for (;;) {
    i = scalar(v, i, end, out);
    if (i < 0) return -1;
    if (v[i] === 93) return i + 1;
    if (v[i] !== 44) return -1;
    i++;
  }
}

/** The shape of messages whose members are `fields`, then _op, then _version. */
export function messageShape(fields: readonly string[]): MessageShape {
  // Each member's start, `{"name":` or `,"name":`.
  if (fields.length === 0) throw new Error('a message shape has at least one member');
  const prefixes = fields.map((f, i) => enc(`${i === 0 ? '{' : ','}${JSON.stringify(f)}:`));
  const n = fields.length;
  const scan = { flags: 0 };
  return {
    fields: [...fields],
    newRead: () => ({ start: new Int32Array(n), end: new Int32Array(n), flags: new Uint8Array(n), versionStart: 0, versionEnd: 0, isDelete: false }),
    read(v: Uint8Array, into: MessageRead, from = 0, to = v.length): boolean {
      let at = from;
      let high = false;
      for (let i = 0; i < n; i++) {
        at = expect(v, at, prefixes[i] as Uint8Array, to);
        if (at < 0) return false;
        scan.flags = 0;
        const end = member(v, at, to, scan);
        if (end < 0) return false;
        into.start[i] = at;
        into.end[i] = end;
        into.flags[i] = scan.flags;
        if (scan.flags & HIGH) high = true;
        at = end;
      }
      at = expect(v, at, OP, to);
      if (at < 0) return false;
      let after = expect(v, at, UPSERT, to);
      into.isDelete = after < 0;
      if (after < 0) after = expect(v, at, DELETE, to);
      at = expect(v, after, VERSION, to);
      if (at < 0) return false;
      // (0|[1-9]\d{0,15}), then the closing brace, then nothing
      let i = at;
      if (v[i] === 48) i++;
      else while (isDigit(v[i]) && i - at < 16) i++;
      if (i === at || v[i] !== 125 || i + 1 !== to) return false;
      into.versionStart = at;
      into.versionEnd = i;
      // Only a string can hold a byte above 0x7f: a text that is no valid UTF-8 takes the slow way
      // (which reads it as the same replacement characters as before).
      return !high || isUtf8(from === 0 && to === v.length ? v : v.subarray(from, to));
    },
  };
}

/** A captured member as JSON.parse reads it. */
export function tokenValue(token: string): unknown {
  const c = token.charCodeAt(0);
  if (c === 34 /* " */) return token.indexOf('\\') < 0 ? token.slice(1, -1) : JSON.parse(token);
  if (c === 110 /* n */) return null;
  if (c === 116 /* t */) return true;
  if (c === 102 /* f */) return false;
  if (c === 91 /* [ */) return JSON.parse(token);
  return Number(token); // JSON's number grammar only (the reader): the same double as JSON.parse
}
