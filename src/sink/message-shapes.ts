/**
 * The consumer's fast reading of a message (issue 14): one regular expression per message shape
 * instead of JSON.parse into an object per message (which, with the garbage it leaves, was the
 * largest single cost of the consumer after kafkajs's decoding).
 *
 * A shape is the order of a message's members, as the producer writes them (codec.ts): the
 * columns, then "_op", then "_version". The sink learns a shape from a message it has read the
 * slow way (JSON.parse), and from then on reads messages of that shape with the shape's pattern,
 * which captures each member's JSON text. Only flat JSON of exactly that shape matches: no
 * whitespace, values that are scalars (a string, a number, true, false, null) or arrays of
 * scalars, "_op" upsert or delete,
 * "_version" a plain integer. Anything else — an object, a nested array, another order, an unknown member, a
 * truncate marker, a message of f141f4e, a malformed one — does not match and takes the slow
 * way, which decides (and explains any dead letter) exactly as before.
 *
 * `tokenValue` turns a captured member into the value JSON.parse gives, so the sink writes the
 * same bytes either way (test/unit/sink-fast-rows.test.ts compares them).
 */

/** One JSON scalar: a number (JSON's grammar), a string (JSON's escapes, no raw control character), true, false, null. */
const SCALAR = String.raw`(?:-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|"(?:[^"\\\u0000-\u001f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*"|true|false|null)`;
/** A member's value: a scalar, or a flat array of scalars (an array column). */
const MEMBER = `(${SCALAR}|\\[(?:${SCALAR}(?:,${SCALAR})*)?\\])`;

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

export interface MessageShape {
  /** The member names, in order, without _op and _version. */
  readonly fields: readonly string[];
  readonly pattern: RegExp;
  /** Capture index of each field: fields[i] is group i + 1; _op is fields.length + 1, _version the next. */
  readonly opGroup: number;
  readonly versionGroup: number;
}

/** The shape of messages whose members are `fields`, then _op, then _version. */
export function messageShape(fields: readonly string[]): MessageShape {
  const members = fields.map((f) => `${escapeRegExp(JSON.stringify(f))}:${MEMBER}`);
  const source = `^\\{${[...members, '"_op":"(upsert|delete)"', '"_version":(0|[1-9]\\d{0,15})'].join(',')}\\}$`;
  return { fields: [...fields], pattern: new RegExp(source), opGroup: fields.length + 1, versionGroup: fields.length + 2 };
}

/** A captured member as JSON.parse reads it. */
export function tokenValue(token: string): unknown {
  const c = token.charCodeAt(0);
  if (c === 34 /* " */) return token.indexOf('\\') < 0 ? token.slice(1, -1) : JSON.parse(token);
  if (c === 110 /* n */) return null;
  if (c === 116 /* t */) return true;
  if (c === 102 /* f */) return false;
  if (c === 91 /* [ */) return JSON.parse(token);
  return Number(token); // JSON's number grammar only (the pattern): the same double as JSON.parse
}

/**
 * A string member that JSON.stringify of its value gives back unchanged: no escape at all (the
 * pattern already excludes raw quotes and control characters, and a UTF-8 decoded text holds no
 * lone surrogate). The sink writes such a member as it came.
 */
export function isPlainString(token: string): boolean {
  return token.charCodeAt(0) === 34 && token.indexOf('\\') < 0;
}
