/**
 * ClickHouse column types as the sink writes them: for each type (as system.columns prints it),
 * how a value of the message becomes a TabSeparated field — checked first, so that ClickHouse
 * never "stores" something it would silently corrupt (18.16 turns an out-of-range DateTime into
 * 0000-00-00; 26.7 clamps a Date32; every version truncates extra Decimal digits) — and how it is
 * written as a SQL literal for the existence check.
 *
 * TabSeparated, not JSONEachRow (issue 14): ClickHouse parses it with about half the CPU, and
 * the body is 40 % of the bytes (no member names; bench/clickhouse-formats.mjs). A field is the
 * value's text with `\`, tab, line feed, carriage return, NUL, backspace and form feed escaped;
 * NULL is `\N`. An array is `[…]` with its elements in ClickHouse's quoted form (strings, dates
 * and UUIDs in single quotes with the same escapes plus `\'`, NULL as `NULL`), read as such by
 * 18.16 and 26.7 alike (both were probed with every escape; test/clickhouse-current and
 * types-roundtrip store them). Decimal and Int64 keep every digit: the text is written, never a
 * double.
 */
import { chLiteral } from './identifiers.js';
import { parseTimestamp, type TimestampParts } from './timestamps.js';

/** A value ClickHouse cannot hold: the row is dead-lettered with this reason. */
export class Refused extends Error {}

export interface ChCodec {
  /** The type as system.columns prints it. */
  readonly type: string;
  readonly nullable: boolean;
  /** A message value (JSON.parse'd; never undefined) → its TabSeparated field. Throws Refused. */
  write(v: unknown): string;
  /** The same value as an element of an array: ClickHouse's quoted form. Throws Refused. */
  quoted(v: unknown): string;
  /** The type's default as a field (what a column gets in a tombstone row: `\N` when nullable). */
  readonly zero: string;
  /** A message value → SQL literal of this type (for `key IN (…)`). Throws Refused. */
  literal(v: unknown): string;
  /**
   * The same value as one canonical text, whether it comes from a message or from ClickHouse's
   * toString() — which prints some types differently (26.7 prints Decimal 1.50 as 1.5): keys are
   * matched by this.
   */
  canon(v: unknown): string;
  /**
   * The values the sink may write straight from a message's bytes (src/sink/row-bytes.ts), giving
   * exactly what write() gives; any other value goes through write().
   */
  readonly fast?: FastForm;
}

/**
 * - string (String, FixedString): a JSON string without escapes is written as it is, between its
 *   quotes (JSON allows no raw tab, line feed or other control character in a string, so its text
 *   needs no escape here either);
 * - int: a JSON integer, or a string of one, of at most 15 digits and within [min, max], is
 *   written as it is (no leading zero, not -0);
 * - timestamp: a string 'YYYY-MM-DD HH:MM:SS[.f…]' (no escapes) of a year within [minYear,
 *   maxYear] is written to the second, plus `scale` digits of its fraction.
 */
export type FastForm = { kind: 'string' } | { kind: 'int'; min: number; max: number } | { kind: 'timestamp'; scale: number; minYear: number; maxYear: number };

/** The escapes of a TabSeparated field and of a quoted value (ClickHouse reads both the same way). */
const ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r', '\u0000': '\\0', '\u0008': '\\b', '\u000c': '\\f', "'": "\\'" };
const FIELD_SPECIAL = /[\\\t\n\r\u0000\u0008\u000c]/;
const FIELD_SPECIALS = new RegExp(FIELD_SPECIAL.source, 'g');
const QUOTED_SPECIALS = /[\\\t\n\r\u0000\u0008\u000c']/g;
const escapeChar = (c: string) => ESCAPES[c] as string;

/** A string as a TabSeparated field. */
export function tsvText(s: string): string {
  return FIELD_SPECIAL.test(s) ? s.replace(FIELD_SPECIALS, escapeChar) : s;
}

/** A string in ClickHouse's quoted form (an element of an array). */
export function quotedText(s: string): string {
  return `'${s.replace(QUOTED_SPECIALS, escapeChar)}'`;
}

export interface CodecContext {
  /** Years a DateTime/DateTime64 holds without wrapping or clamping (capabilities.dateTimeYears). */
  dateTimeYears: { min: number; max: number };
  /** Dates a Date32 holds (capabilities.dateRange on a server with Date32). */
  date32Range: { min: string; max: string };
}

const DATE_RANGE = { min: '1970-01-01', max: '2105-12-31' };
const DATETIME_YEARS = { min: 1970, max: 2105 };

const INT_RANGES: Record<string, [bigint, bigint]> = {
  Int8: [-(2n ** 7n), 2n ** 7n - 1n],
  Int16: [-(2n ** 15n), 2n ** 15n - 1n],
  Int32: [-(2n ** 31n), 2n ** 31n - 1n],
  Int64: [-(2n ** 63n), 2n ** 63n - 1n],
  UInt8: [0n, 2n ** 8n - 1n],
  UInt16: [0n, 2n ** 16n - 1n],
  UInt32: [0n, 2n ** 32n - 1n],
  UInt64: [0n, 2n ** 64n - 1n],
};

const describe = (v: unknown) => (typeof v === 'string' ? JSON.stringify(v.length > 80 ? `${v.slice(0, 80)}…` : v) : JSON.stringify(v));

/** An integer's canonical text of at most 15 digits: exact as a Number, no leading zero. */
export const SHORT_INT = /^(?:0|-?[1-9]\d{0,14})$/;

function intCodec(type: string): Omit<ChCodec, 'type' | 'nullable'> {
  const [min, max] = INT_RANGES[type] as [bigint, bigint];
  // Number bounds for the usual case, a JSON number within ±2^53 (no BigInt made per value).
  const minN = Number(min);
  const maxN = Number(max);
  const text = (v: unknown): string => {
    let s: string;
    if (typeof v === 'number' && Number.isSafeInteger(v)) {
      if (v >= minN && v <= maxN) return String(v);
      s = String(v);
    } else if (typeof v === 'string' && SHORT_INT.test(v)) {
      const n = Number(v);
      if (n >= minN && n <= maxN) return v;
      s = v;
    } else if (typeof v === 'string' && /^-?\d{1,20}$/.test(v)) s = v;
    else if (typeof v === 'boolean' && type === 'UInt8') return v ? '1' : '0'; // boolean on 18.16
    else throw new Refused(`${type} needs an integer, got ${describe(v)}`);
    const n = BigInt(s);
    if (n < min || n > max) throw new Refused(`${s} is outside ${type} (${min} to ${max})`);
    return n.toString();
  };
  return {
    write: text,
    quoted: text,
    literal: text,
    zero: '0',
    // Bounds of at most 15 digits are exact as Numbers; wider ones only clip what the byte path takes.
    fast: { kind: 'int', min: Math.max(minN, -(10 ** 15 - 1)), max: Math.min(maxN, 10 ** 15 - 1) },
    canon: (v) => (typeof v === 'boolean' ? (v ? '1' : '0') : typeof v === 'number' && Number.isSafeInteger(v) ? String(v) : typeof v === 'string' && SHORT_INT.test(v) ? v : BigInt(String(v)).toString()),
  };
}

const FLOAT = /^-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const FLOAT_SPECIAL: Record<string, string> = { NaN: 'nan', Infinity: 'inf', '-Infinity': '-inf' };

function floatCodec(type: string): Omit<ChCodec, 'type' | 'nullable'> {
  const write = (v: unknown): string => {
    if (typeof v === 'string') {
      if (FLOAT.test(v)) return v;
      const special = FLOAT_SPECIAL[v];
      if (special) return special;
    } else if (typeof v === 'number' && Number.isFinite(v)) {
      return String(v);
    }
    throw new Refused(`${type} needs a number, got ${describe(v)}`);
  };
  return { write, quoted: write, literal: (v) => `to${type}(${chLiteral(write(v))})`, zero: '0', canon: (v) => String(Number(v)) };
}

function decimalCodec(type: string, precision: number, scale: number): Omit<ChCodec, 'type' | 'nullable'> {
  const write = (v: unknown): string => {
    const s = typeof v === 'number' && Number.isFinite(v) ? String(v) : v;
    const m = typeof s === 'string' ? /^(-?)(\d+)(?:\.(\d+))?$/.exec(s) : null;
    if (!m) throw new Refused(`${type} cannot hold ${describe(v)}`);
    const intDigits = (m[2] as string).replace(/^0+(?=\d)/, '');
    const frac = (m[3] ?? '').replace(/0+$/, '');
    if (frac.length > scale) throw new Refused(`${describe(v)} has more than ${scale} decimal places: ${type} would round it`);
    if (intDigits !== '0' && intDigits.length > precision - scale) throw new Refused(`${describe(v)} has more than ${precision - scale} digits before the point: too large for ${type}`);
    return s as string; // the text, every digit (unquoted in an array: 18.16 refuses a quoted Decimal)
  };
  const canon = (v: unknown): string => {
    const m = /^(-?)0*(\d*?)(?:\.(\d*?)0*)?$/.exec(String(v));
    if (!m) return String(v);
    const int = m[2] || '0';
    const frac = m[3] ?? '';
    const sign = m[1] && (int !== '0' || frac !== '') ? '-' : '';
    return `${sign}${int}${frac ? `.${frac}` : ''}`;
  };
  return { write, quoted: write, literal: (v) => `toDecimal${precision <= 9 ? 32 : precision <= 18 ? 64 : precision <= 38 ? 128 : 256}(${chLiteral(write(v))}, ${scale})`, zero: '0', canon };
}

const needString = (v: unknown): string => {
  if (typeof v !== 'string') throw new Refused(`String needs a string, got ${describe(v)}`);
  return v;
};
const stringCodec: Omit<ChCodec, 'type' | 'nullable'> = {
  fast: { kind: 'string' },
  write: (v) => tsvText(needString(v)),
  quoted: (v) => quotedText(needString(v)),
  literal: (v) => chLiteral(needString(v)),
  zero: '',
  canon: (v) => String(v),
};

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const uuidText = (v: unknown): string => {
  if (typeof v !== 'string' || !UUID_RE.test(v)) throw new Refused(`UUID needs a UUID, got ${describe(v)}`);
  return v.toLowerCase();
};
const uuidCodec: Omit<ChCodec, 'type' | 'nullable'> = {
  write: uuidText,
  quoted: (v) => `'${uuidText(v)}'`,
  literal: (v) => `toUUID(${chLiteral(uuidText(v))})`,
  zero: '00000000-0000-0000-0000-000000000000',
  canon: (v) => String(v).toLowerCase(),
};

const boolText = (v: unknown): string => {
  if (typeof v !== 'boolean') throw new Refused(`Bool needs true or false, got ${describe(v)}`);
  return v ? 'true' : 'false';
};
const boolCodec: Omit<ChCodec, 'type' | 'nullable'> = {
  write: boolText,
  quoted: boolText,
  literal: (v) => (v === true ? 'true' : 'false'),
  zero: 'false',
  canon: (v) => (v === true || v === 'true' || v === '1' || v === 1 ? '1' : '0'),
};

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
function dateCodec(type: string, range: { min: string; max: string }): Omit<ChCodec, 'type' | 'nullable'> {
  const check = (v: unknown): string => {
    const m = typeof v === 'string' ? DATE.exec(v) : null;
    if (!m || !parseTimestamp(`${v as string} 00:00:00`)) throw new Refused(`${type} needs a date 'YYYY-MM-DD', got ${describe(v)}`);
    if ((v as string) < range.min || (v as string) > range.max) throw new Refused(`${v as string} is outside what ${type} can store (${range.min} to ${range.max})`);
    return v as string;
  };
  return { write: check, quoted: (v) => `'${check(v)}'`, literal: (v) => `to${type}(${chLiteral(check(v))})`, zero: range.min, canon: (v) => String(v) };
}

function dateTimeCodec(type: string, scale: number, years: { min: number; max: number }): Omit<ChCodec, 'type' | 'nullable'> {
  const text = (v: unknown): string => {
    const p: TimestampParts | null = typeof v === 'string' ? parseTimestamp(v) : null;
    if (!p) throw new Refused(`${type} needs a timestamp 'YYYY-MM-DD HH:MM:SS[.ffffff]', got ${describe(v)}`);
    if (p.year < years.min || p.year > years.max) {
      throw new Refused(`${v as string} is outside what ClickHouse's ${type} can store (${years.min}-01-01 00:00:00 to ${years.max}-12-31 23:59:59)`);
    }
    // parseTimestamp matched fixed widths (4-2-2 2:2:2), so the text's first 19 characters are the
    // value to the second; only a 'T' separator is replaced.
    const t = v as string;
    const base = t.charCodeAt(10) === 32 ? t.slice(0, 19) : `${t.slice(0, 10)} ${t.slice(11, 19)}`;
    // DateTime has whole seconds (18.16 fails the WHOLE insert on a fraction); DateTime64(s) gets
    // s digits, truncated, never rounded, so that a value never moves to the next second.
    return scale === 0 ? base : `${base}.${p.micros.padEnd(scale, '0').slice(0, scale)}`;
  };
  const literal = (v: unknown) => (scale === 0 ? `toDateTime(${chLiteral(text(v))}, 'UTC')` : `toDateTime64(${chLiteral(text(v))}, ${scale}, 'UTC')`);
  // Canonical: the text as this type stores it (ClickHouse's toString prints exactly that).
  const canon = (v: unknown) => {
    try {
      return text(v);
    } catch {
      return String(v);
    }
  };
  return { write: text, quoted: (v) => `'${text(v)}'`, literal, zero: `${years.min}-01-01 00:00:00`, canon, fast: { kind: 'timestamp', scale, minYear: years.min, maxYear: years.max } };
}

function arrayCodec(inner: ChCodec): Omit<ChCodec, 'type' | 'nullable'> {
  const write = (v: unknown): string => {
    if (!Array.isArray(v)) throw new Refused(`Array needs an array, got ${describe(v)}`);
    return `[${v
      .map((x) => {
        if (Array.isArray(x) && !inner.type.startsWith('Array(')) throw new Refused('a multi-dimensional array: the ClickHouse column has one dimension');
        return inner.quoted(x);
      })
      .join(',')}]`;
  };
  return {
    write,
    quoted: write,
    literal: () => {
      throw new Refused('an array cannot be a key');
    },
    zero: '[]',
    canon: (v) => JSON.stringify(v),
  };
}

/**
 * The codec of a ClickHouse type as system.columns prints it; null for a type the sink does not
 * write (the consumer refuses to start on such a column, naming it).
 */
export function chCodec(type: string, ctx: CodecContext = { dateTimeYears: DATETIME_YEARS, date32Range: DATE_RANGE }): ChCodec | null {
  const t = type.trim();
  let m = /^Nullable\((.*)\)$/.exec(t);
  if (m) {
    const inner = chCodec(m[1] as string, ctx);
    if (!inner) return null;
    return {
      type: t,
      nullable: true,
      write: (v) => (v === null ? '\\N' : inner.write(v)),
      quoted: (v) => (v === null ? 'NULL' : inner.quoted(v)),
      literal: (v) => (v === null ? 'NULL' : inner.literal(v)),
      zero: '\\N',
      canon: (v) => (v === null ? '\\N' : inner.canon(v)),
      ...(inner.fast ? { fast: inner.fast } : {}),
    };
  }
  m = /^LowCardinality\((.*)\)$/.exec(t);
  if (m) {
    const inner = chCodec(m[1] as string, ctx);
    return inner && { ...inner, type: t };
  }
  const of = (c: Omit<ChCodec, 'type' | 'nullable'>): ChCodec => {
    const strict: ChCodec = {
      type: t,
      nullable: false,
      zero: c.zero,
      write: (v) => {
        if (v === null) throw new Refused(`NULL in a column of type ${t}`);
        return c.write(v);
      },
      quoted: (v) => {
        if (v === null) throw new Refused(`NULL in a column of type ${t}`);
        return c.quoted(v);
      },
      literal: c.literal,
      canon: c.canon,
      ...(c.fast ? { fast: c.fast } : {}),
    };
    return strict;
  };
  if (t in INT_RANGES) return of(intCodec(t));
  if (t === 'Float32' || t === 'Float64') return of(floatCodec(t));
  // FixedString is not a type migrate makes; a table made by hand may have it, and ClickHouse itself
  // refuses a value that is too long (the sink then splits the batch to find the row).
  if (t === 'String' || /^FixedString\(\d+\)$/.test(t)) return of(stringCodec);
  if (t === 'UUID') return of(uuidCodec);
  if (t === 'Bool') return of(boolCodec);
  if (t === 'Date') return of(dateCodec('Date', DATE_RANGE));
  if (t === 'Date32') return of(dateCodec('Date32', ctx.date32Range));
  m = /^Decimal\((\d+),\s*(\d+)\)$/.exec(t);
  if (m) return of(decimalCodec(t, Number(m[1]), Number(m[2])));
  m = /^Decimal(32|64|128|256)\((\d+)\)$/.exec(t);
  if (m) return of(decimalCodec(t, { '32': 9, '64': 18, '128': 38, '256': 76 }[m[1] as '32'], Number(m[2])));
  if (/^DateTime(\('[^']*'\))?$/.test(t)) return of(dateTimeCodec(t, 0, DATETIME_YEARS));
  m = /^DateTime64\((\d)(?:,\s*'[^']*')?\)$/.exec(t);
  if (m) return of(dateTimeCodec(t, Number(m[1]), ctx.dateTimeYears));
  m = /^Array\((.*)\)$/.exec(t);
  if (m) {
    const inner = chCodec(m[1] as string, ctx);
    return inner && of(arrayCodec(inner));
  }
  return null;
}
