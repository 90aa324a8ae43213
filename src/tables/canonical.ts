/**
 * The canonical text of a value, computed in SQL on both sides — PostgreSQL from its column,
 * ClickHouse from the column it maps to — so that `verify` can hash a row on each side and compare
 * hashes instead of rows. The two expressions of a column must give the same text for the same
 * value; each pair is tested against the real servers (test/integration/types-roundtrip.test.ts).
 *
 *   integers, uuid, date, text-like     their text
 *   numeric → Decimal                   trailing fractional zeros trimmed (26.7 prints 1.50 as 1.5)
 *   real/double → Float32/Float64       the IEEE bits in hex ('nan' for NaN): exact, print-agnostic
 *   boolean                             '1' / '0'
 *   timestamp(tz) → DateTime64(6)       'YYYY-MM-DD HH:MM:SS.ffffff' (timestamptz in UTC)
 *   timestamp(tz) → DateTime (18.16)    whole seconds (that column holds no more)
 *   anything stored as String           the stored text, which is PostgreSQL's own
 *   arrays                              the elements' canonical texts, length-prefixed
 * and every value length-prefixed (`<bytes>:<text>`), NULL as '-', so that concatenating columns
 * can never make two different rows look alike.
 */
import { chIdent, pgIdent } from './identifiers.js';
import type { PgColumn } from './pg-types.js';

export interface CanonicalPair {
  /** SQL giving the canonical text of the PostgreSQL column (never NULL: '-' for NULL). */
  pg: string;
  /** SQL giving the same text from the ClickHouse column. */
  ch: string;
}

const stripNullable = (t: string) => /^Nullable\((.*)\)$/.exec(t)?.[1] ?? t;
const stripLowCardinality = (t: string) => /^LowCardinality\((.*)\)$/.exec(t)?.[1] ?? t;
/** The type without Nullable and LowCardinality, in either order. */
const bare = (t: string) => stripNullable(stripLowCardinality(stripNullable(t)));
/** Whether the column holds NULLs: `Nullable(T)` or `LowCardinality(Nullable(T))`. */
const isNullable = (t: string) => t.startsWith('Nullable(') || t.startsWith('LowCardinality(Nullable(');

/** Canonical text of a non-NULL scalar: [pg(expr), ch(expr)], or null when the pair is unknown. */
function scalarCanon(typname: string, chType: string): [(e: string) => string, (e: string) => string] | null {
  const t = bare(chType);
  if (t === 'String') return [(e) => `${e}::text`, (e) => e];
  if (/^U?Int(8|16|32|64)$/.test(t) && typname !== 'bool') return [(e) => `${e}::text`, (e) => `toString(${e})`];
  if (/^Decimal/.test(t)) {
    // PostgreSQL 13+: trim_scale; ClickHouse: trailing zeros (and a bare point) trimmed when there is a point.
    return [(e) => `trim_scale(${e})::text`, (e) => `if(position(toString(${e}), '.') > 0, replaceRegexpOne(toString(${e}), '\\\\.?0*$', ''), toString(${e}))`];
  }
  // reinterpretAsFixedString, not reinterpretAsString: the latter drops trailing zero bytes, so
  // 0.0 and subnormals printed short (found on 26.7 by the conformance suite).
  if (t === 'Float64') return [(e) => `CASE WHEN ${e} = 'NaN'::float8 THEN 'nan' ELSE encode(float8send(${e}), 'hex') END`, (e) => `if(isNaN(${e}), 'nan', lower(hex(reverse(reinterpretAsFixedString(toFloat64(${e}))))))`];
  if (t === 'Float32') return [(e) => `CASE WHEN ${e} = 'NaN'::float4 THEN 'nan' ELSE encode(float4send(${e}), 'hex') END`, (e) => `if(isNaN(${e}), 'nan', lower(hex(reverse(reinterpretAsFixedString(toFloat32(${e}))))))`];
  if (t === 'Bool' || (t === 'UInt8' && typname === 'bool')) return [(e) => `CASE WHEN ${e} THEN '1' ELSE '0' END`, (e) => `toString(toUInt8(${e}))`];
  if (t === 'UUID' || t === 'Date32') return [(e) => `${e}::text`, (e) => `toString(${e})`];
  // 18.16 prints the epoch (day 0, second 0) as 0000-00-00 [00:00:00]; the value is right.
  if (t === 'Date') return [(e) => `${e}::text`, (e) => `if(toUInt16(${e}) = 0, '1970-01-01', toString(${e}))`];
  if (/^DateTime64\(6/.test(t)) return [(e) => `to_char(${e}, 'YYYY-MM-DD HH24:MI:SS.US')`, (e) => `toString(${e})`];
  if (/^DateTime(\(|$)/.test(t)) return [(e) => `to_char(date_trunc('second', ${e}), 'YYYY-MM-DD HH24:MI:SS')`, (e) => `if(toUInt32(${e}) = 0, '1970-01-01 00:00:00', toString(${e}))`];
  return null;
}

const lenPrefixPg = (text: string) => `(octet_length(${text})::text || ':' || ${text})`;
const lenPrefixCh = (text: string) => `concat(toString(length(${text})), ':', ${text})`;

/**
 * The pair for a column: PostgreSQL `column` of the table aliased `alias`; ClickHouse column of the
 * same name (`nullFlag`: a nullable array's companion column). Null when verify cannot compare it.
 */
export function canonicalPair(column: PgColumn, chType: string, alias: string, nullFlag: string | null): CanonicalPair | null {
  const pgCol = `${alias}.${pgIdent(column.name)}`;
  const chCol = chIdent(column.name);
  if (column.element) {
    const inner = /^Array\((.*)\)$/.exec(chType)?.[1];
    const el = inner ? scalarCanon(column.element.typname, inner) : null;
    if (!el) return null;
    const [pe, ce] = el;
    const pgArr = `COALESCE((SELECT string_agg(CASE WHEN e IS NULL THEN '-' ELSE ${lenPrefixPg(pe('e'))} END, ',' ORDER BY o) FROM unnest(${pgCol}) WITH ORDINALITY AS u(e, o)), '')`;
    const chArr = `arrayStringConcat(arrayMap(x -> if(isNull(x), '-', ${lenPrefixCh(ce('assumeNotNull(x)'))}), ${chCol}), ',')`;
    return {
      pg: `CASE WHEN ${pgCol} IS NULL THEN '-' ELSE ${lenPrefixPg(pgArr)} END`,
      ch: nullFlag ? `if(${chIdent(nullFlag)} = 1, '-', ${lenPrefixCh(chArr)})` : lenPrefixCh(chArr),
    };
  }
  const s = scalarCanon(column.typname, chType);
  if (!s) return null;
  const [p, c] = s;
  return {
    pg: `CASE WHEN ${pgCol} IS NULL THEN '-' ELSE ${lenPrefixPg(p(pgCol))} END`,
    ch: isNullable(chType) ? `if(isNull(${chCol}), '-', ${lenPrefixCh(c(`assumeNotNull(${chCol})`))})` : lenPrefixCh(c(chCol)),
  };
}
