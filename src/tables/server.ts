/**
 * What a ClickHouse server version can hold, as far as our DDL and values go. One place, so that
 * the DDL, the sink's range checks and the README's type table agree. Measured on 18.16.1 (the
 * local stack) and 26.7.2.1 (the embedded engine, npm chdb); the versions in between come from
 * ClickHouse's changelog and are marked so in the README.
 */
export interface ServerVersion {
  major: number;
  minor: number;
  text: string;
}

export function parseServerVersion(text: string): ServerVersion {
  const m = /^(\d+)\.(\d+)/.exec(text.trim());
  if (!m) throw new Error(`cannot read the ClickHouse version from ${JSON.stringify(text)}`);
  return { major: Number(m[1]), minor: Number(m[2]), text: text.trim() };
}

const atLeast = (v: Pick<ServerVersion, 'major' | 'minor'>, major: number, minor: number) => v.major > major || (v.major === major && v.minor >= minor);

export interface Capabilities {
  /** DateTime64 (20.1): timestamps keep their microseconds. */
  dateTime64: boolean;
  /** Date32 (21.9): dates before 1970 and after 2105. */
  date32: boolean;
  /** Bool (21.12); UInt8 before. */
  bool: boolean;
  /** Decimal up to precision 76 (Decimal256, 22.x); 38 before. */
  maxDecimalPrecision: number;
  /** LowCardinality(String) (19.3). */
  lowCardinality: boolean;
  /**
   * Text input of Float32/Float64 parsed to the nearest value (26.7 made precise parsing the
   * default for every input format). 18.16 misreads 5–10 % of doubles and ~11 % of floats by a unit
   * in the last place, whatever the number of digits (measured): there, floats are stored as their
   * exact text.
   */
  exactFloats: boolean;
  /** ReplacingMergeTree(version, is_deleted) (23.2): FINAL hides deleted rows by itself. */
  isDeleted: boolean;
  /** insert_deduplication_token with non_replicated_deduplication_window (22.2). */
  dedupToken: boolean;
  /** The widest dates a Date/Date32 column takes without silently clamping or wrapping. */
  dateRange: { min: string; max: string };
  /** Likewise for DateTime/DateTime64 (whole years; timestamps within them). */
  dateTimeYears: { min: number; max: number };
}

export function capabilities(v: Pick<ServerVersion, 'major' | 'minor'>): Capabilities {
  const dateTime64 = atLeast(v, 20, 1);
  const date32 = atLeast(v, 21, 9);
  // 1900–2299 since 22.8 (ClickHouse #39425); 1925–2283 before. DateTime/Date hold 1970–2105 safely
  // (18.16: 2106-02-07 wraps to 1970 and 1969-12-31 becomes 0000-00-00, without an error).
  const wide = atLeast(v, 22, 8);
  return {
    dateTime64,
    date32,
    bool: atLeast(v, 21, 12),
    maxDecimalPrecision: atLeast(v, 22, 0) ? 76 : 38,
    lowCardinality: atLeast(v, 19, 3),
    exactFloats: atLeast(v, 26, 7),
    isDeleted: atLeast(v, 23, 2),
    dedupToken: atLeast(v, 22, 2),
    dateRange: date32 ? (wide ? { min: '1900-01-01', max: '2299-12-31' } : { min: '1925-01-01', max: '2283-11-11' }) : { min: '1970-01-01', max: '2105-12-31' },
    dateTimeYears: dateTime64 ? (wide ? { min: 1900, max: 2299 } : { min: 1925, max: 2282 }) : { min: 1970, max: 2105 },
  };
}
