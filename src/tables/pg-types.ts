/**
 * PostgreSQL column types: how the producer reads a value, how it travels in the message, and
 * which ClickHouse type holds it exactly on a given server. One table (TYPES below) for all of it,
 * as PeerDB keeps one mapping per intermediate kind — and with the bugs their users met in mind:
 * numeric is never squeezed into a fixed Decimal, double precision never into Float32, uuid and
 * arrays are mapped, timestamptz is an instant in UTC, and a type we cannot carry exactly is
 * refused at migrate time, naming the column, instead of being altered.
 *
 * Every value is read as PostgreSQL's own text, in sessions whose settings fix that text
 * (PG_TEXT_SETTINGS): ISO dates, UTC, shortest exact floats, hex bytea. The message then carries
 *  - int2/int4 as JSON numbers (exact in every JSON parser);
 *  - int8, numeric, real and double precision as JSON strings of that text, so that no JSON parser
 *    rounds them on the way;
 *  - booleans as true/false, timestamps as 'YYYY-MM-DD HH:MM:SS.ffffff' (timestamptz in UTC);
 *  - everything else as a JSON string of the text;
 *  - arrays as JSON arrays of those, NULL elements as null.
 */
import type { Capabilities } from './server.js';

/** A column as the catalog describes it (src/tables/introspect.ts). */
export interface PgColumn {
  name: string;
  /** format_type(): 'integer', 'numeric(10,2)', 'timestamp with time zone', 'text[]', 'mood' … */
  type: string;
  /** pg_type.typname of the column's type, or of the domain's base type. */
  typname: string;
  /** 'b' base, 'e' enum, 'd' domain (resolved to its base), 'c' composite, 'r' range … */
  typtype: string;
  /** For arrays: the element's typname and typtype; null otherwise. */
  element: { typname: string; typtype: string } | null;
  /** atttypmod (numeric precision and scale; -1 when unconstrained). */
  typmod: number;
  notNull: boolean;
}

/**
 * The shape of a column's text that the producer can write to the message without making a
 * string of it (src/tables/copy-rows.ts), when the text is plain: `digits` as it is, `bool` as
 * true/false, `timestamp` normalized, `string` between quotes. Any other text, and `json`
 * always, goes through `encode`.
 */
export type WireKind = 'digits' | 'bool' | 'timestamp' | 'string' | 'json';

/** What a scalar PostgreSQL type becomes. */
interface ScalarType {
  /** The ClickHouse type (without Nullable) on this server, or why it cannot be carried. */
  clickhouse(caps: Capabilities, typmod: number): string;
  /** PostgreSQL text → the JSON of the message. */
  encode(text: string): string;
  /** What `encode` does to plain text (WireKind); `string` when absent. */
  wire?: WireKind;
}

/** The session settings under which the producer (and verify) read values as text. */
export const PG_TEXT_SETTINGS: Record<string, string> = {
  DateStyle: 'ISO, YMD',
  IntervalStyle: 'postgres',
  TimeZone: 'UTC',
  extra_float_digits: '1', // the default since PostgreSQL 12: the shortest text that reads back exactly
  bytea_output: 'hex',
};

/** What JSON.stringify escapes: quotes, backslashes, control characters, and lone surrogates (this also matches pairs). */
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

/** JSON.stringify(text), without its cost for text that needs no escape (most; ~5 % of the sweep's CPU was there, issue 14). */
export function jsonText(text: string): string {
  return NEEDS_ESCAPE.test(text) ? JSON.stringify(text) : `"${text}"`;
}
const str = jsonText;

/** PostgreSQL's ISO timestamp text → 'YYYY-MM-DD HH:MM:SS.ffffff'; anything else (BC, infinity) as it is. */
const TS = /^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})(?:\.(\d{1,6}))?(\+00)?$/;
export function normalizeTimestamp(text: string): string {
  const m = TS.exec(text);
  if (!m) return text;
  return `${m[1]}.${(m[2] ?? '').padEnd(6, '0')}`;
}

const integer = (ch: string): ScalarType => ({ clickhouse: () => ch, encode: (t) => t, wire: 'digits' });
const asString: ScalarType = { clickhouse: () => 'String', encode: str };
const float = (ch: 'Float32' | 'Float64'): ScalarType => ({
  clickhouse: (caps) => (caps.exactFloats ? ch : 'String'),
  encode: str,
});

/** numeric(p,s): precision and scale from the type modifier; null when unconstrained. */
export function numericPrecision(typmod: number): { precision: number; scale: number } | null {
  if (typmod < 4) return null;
  const m = typmod - 4;
  const precision = (m >> 16) & 0xffff;
  let scale = m & 0xffff;
  if (scale > 0x7ff) scale -= 0x800 * 2; // PostgreSQL 15 allows a negative scale (11 bits, signed)
  return { precision, scale };
}

const TYPES: Record<string, ScalarType> = {
  int2: integer('Int16'),
  int4: integer('Int32'),
  int8: { clickhouse: () => 'Int64', encode: str },
  numeric: {
    // Decimal where it fits exactly; unconstrained numeric (any precision) and negative scales
    // as their text. Never a fixed Decimal(p,s) guess (Altinity's sink: numeric → Decimal(10,2)).
    clickhouse: (caps, typmod) => {
      const p = numericPrecision(typmod);
      if (!p || p.scale < 0 || p.precision > caps.maxDecimalPrecision) return 'String';
      return `Decimal(${p.precision}, ${p.scale})`;
    },
    encode: str,
  },
  float4: float('Float32'),
  float8: float('Float64'),
  bool: { clickhouse: (caps) => (caps.bool ? 'Bool' : 'UInt8'), encode: (t) => (t === 't' || t === 'true' ? 'true' : 'false'), wire: 'bool' },
  text: asString,
  varchar: asString,
  bpchar: asString,
  name: asString,
  citext: asString,
  xml: asString,
  uuid: { clickhouse: () => 'UUID', encode: str },
  date: { clickhouse: (caps) => (caps.date32 ? 'Date32' : 'Date'), encode: str },
  timestamp: { clickhouse: (caps) => (caps.dateTime64 ? "DateTime64(6, 'UTC')" : "DateTime('UTC')"), encode: (t) => str(normalizeTimestamp(t)), wire: 'timestamp' },
  timestamptz: { clickhouse: (caps) => (caps.dateTime64 ? "DateTime64(6, 'UTC')" : "DateTime('UTC')"), encode: (t) => str(normalizeTimestamp(t)), wire: 'timestamp' },
  time: asString,
  timetz: asString,
  interval: asString,
  json: asString,
  jsonb: asString,
  bytea: asString,
  inet: asString,
  cidr: asString,
  macaddr: asString,
  macaddr8: asString,
};

/** An enum: its label, as LowCardinality(String) where the server has it. */
const ENUM: ScalarType = { clickhouse: (caps) => (caps.lowCardinality ? 'LowCardinality(String)' : 'String'), encode: str };

function scalar(typname: string, typtype: string): ScalarType | null {
  if (typtype === 'e') return ENUM;
  return TYPES[typname] ?? null;
}

/**
 * `Nullable(t)`, except that ClickHouse wants `LowCardinality(Nullable(String))`: a
 * `Nullable(LowCardinality(…))` is refused ("Nested type LowCardinality(String) cannot be inside
 * Nullable type", found on 26.7 by the conformance suite).
 */
export function nullable(t: string): string {
  const lc = /^LowCardinality\((.*)\)$/.exec(t);
  return lc ? `LowCardinality(Nullable(${lc[1]}))` : `Nullable(${t})`;
}

/** What a column becomes: its ClickHouse type and how its values are read and encoded. */
export interface ColumnMapping {
  /** ClickHouse type of the column, Nullable where PostgreSQL allows NULL (never for arrays). */
  clickhouse: string;
  /** For a nullable array: ClickHouse has no Nullable(Array), so a companion UInt8 column says NULL. */
  nullFlagColumn: string | null;
  /** The SQL that reads the column for the message, given its quoted name. */
  select(quoted: string): string;
  /** The value node-postgres returns for `select` (never null: NULLs are handled before) → message JSON. */
  encode(value: unknown): string;
  /** What `encode` does to plain text of `select` (WireKind); `json`: `select` gives JSON, node-postgres parses it. */
  wire: WireKind;
}

export type Mapping = { ok: true; mapping: ColumnMapping } | { ok: false; reason: string };

/** Suffix of the companion column of a nullable array column. */
export const NULL_FLAG_SUFFIX = '__is_null';

export function mapColumn(column: PgColumn, caps: Capabilities): Mapping {
  if (column.element) {
    const el = scalar(column.element.typname, column.element.typtype);
    if (!el) return { ok: false, reason: `${column.type} (arrays of ${column.element.typname} are not supported)` };
    const inner = el.clickhouse(caps, column.typmod);
    return {
      ok: true,
      mapping: {
        clickhouse: `Array(${nullable(inner)})`,
        nullFlagColumn: column.notNull ? null : `${column.name}${NULL_FLAG_SUFFIX}`,
        // Every element as its text (NULL elements stay null): exact, whatever the element type.
        select: (q) => `array_to_json(${q}::text[])`,
        encode: (v) => encodeArray(v, el),
        wire: 'json',
      },
    };
  }
  const s = scalar(column.typname, column.typtype);
  if (!s) return { ok: false, reason: column.type };
  const ch = s.clickhouse(caps, column.typmod);
  return {
    ok: true,
    mapping: {
      clickhouse: column.notNull ? ch : nullable(ch),
      nullFlagColumn: null,
      select: (q) => `${q}::text`,
      encode: (v) => s.encode(String(v)),
      wire: s.wire ?? 'string',
    },
  };
}

/** A JSON array (node-postgres parsed array_to_json) → the message's array; nested arrays stay nested. */
function encodeArray(v: unknown, el: ScalarType): string {
  if (!Array.isArray(v)) throw new Error(`expected an array, got ${typeof v}`);
  return `[${v.map((x) => (x === null ? 'null' : Array.isArray(x) ? encodeArray(x, el) : el.encode(String(x)))).join(',')}]`;
}

/** The PostgreSQL types that map, for the README and error messages. */
export const SUPPORTED_TYPES = [...Object.keys(TYPES), 'enums', 'arrays of these', 'domains over these'];
