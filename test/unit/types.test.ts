// The type mapping, type by type: what each PostgreSQL type becomes in ClickHouse on 18.16 (the
// local stack) and on a current server (26.7, chdb), how its values travel in the message, and
// what the sink refuses rather than let ClickHouse store something else. The real servers are
// checked with the same values in test/integration/types-roundtrip.test.ts and
// test/clickhouse-current/.
import { describe, expect, it } from 'vitest';
import { chCodec, quotedText, Refused, tsvText, type ChCodec } from '../../src/tables/ch-types.js';
import { jsonText, mapColumn, normalizeTimestamp, numericPrecision } from '../../src/tables/pg-types.js';
import { capabilities } from '../../src/tables/server.js';
import { parseTimestamp, parseTimestampByPattern } from '../../src/tables/timestamps.js';
import { column, numericTypmod, type ColumnDef } from './support/specs.js';

const OLD = capabilities({ major: 18, minor: 16 });
const CURRENT = capabilities({ major: 26, minor: 7 });

const chType = (def: ColumnDef, caps = OLD) => {
  const m = mapColumn(column(def), caps);
  if (!m.ok) throw new Error(m.reason);
  return m.mapping.clickhouse;
};
const encode = (def: ColumnDef, value: unknown) => {
  const m = mapColumn(column(def), CURRENT);
  if (!m.ok) throw new Error(m.reason);
  return m.mapping.encode(value);
};
const codec = (type: string, caps = OLD): ChCodec => chCodec(type, { dateTimeYears: caps.dateTimeYears, date32Range: caps.dateRange }) as ChCodec;
const refusal = (f: () => unknown) => {
  try {
    f();
  } catch (err) {
    if (err instanceof Refused) return err.message;
    throw err;
  }
  return null;
};

describe('PostgreSQL → ClickHouse types', () => {
  it.each([
    ['int2', 'Int16', 'Int16'],
    ['int4', 'Int32', 'Int32'],
    ['int8', 'Int64', 'Int64'],
    ['text', 'String', 'String'],
    ['varchar', 'String', 'String'],
    ['uuid', 'UUID', 'UUID'],
    ['bool', 'UInt8', 'Bool'],
    ['date', 'Date', 'Date32'],
    ['timestamp', "DateTime('UTC')", "DateTime64(6, 'UTC')"],
    ['timestamptz', "DateTime('UTC')", "DateTime64(6, 'UTC')"],
    // 18.16 misreads some doubles: there the exact text is stored.
    ['float8', 'String', 'Float64'],
    ['float4', 'String', 'Float32'],
    ['jsonb', 'String', 'String'],
    ['interval', 'String', 'String'],
    ['bytea', 'String', 'String'],
    ['inet', 'String', 'String'],
  ])('%s → %s on 18.16, %s on 26.7 (NOT NULL; Nullable otherwise)', (typname, old, current) => {
    expect(chType([typname, typname, { notNull: true }])).toBe(old);
    expect(chType([typname, typname, { notNull: true }], CURRENT)).toBe(current);
    expect(chType([typname, typname])).toBe(`Nullable(${old})`);
  });

  it('numeric(p,s) → Decimal(p,s) where it fits, its text otherwise (never a guessed precision)', () => {
    expect(numericPrecision(numericTypmod(12, 2))).toEqual({ precision: 12, scale: 2 });
    expect(chType(['n', 'numeric', { notNull: true, typmod: numericTypmod(12, 2) }])).toBe('Decimal(12, 2)');
    expect(chType(['n', 'numeric', { notNull: true, typmod: numericTypmod(50, 10) }])).toBe('String');
    expect(chType(['n', 'numeric', { notNull: true, typmod: numericTypmod(50, 10) }], CURRENT)).toBe('Decimal(50, 10)');
    expect(chType(['n', 'numeric', { notNull: true }])).toBe('String'); // unconstrained
  });

  it('enums → LowCardinality(String) where the server has it; arrays → Array(Nullable(…)) with a NULL flag column', () => {
    // Not Nullable(LowCardinality(String)): ClickHouse refuses that nesting (found on 26.7).
    expect(chType(['mood', 'mood', { typtype: 'e' }], CURRENT)).toBe('LowCardinality(Nullable(String))');
    expect(chType(['moods', '_mood', { typtype: 'e', element: 'mood' }], CURRENT)).toBe('Array(LowCardinality(Nullable(String)))');
    expect(chType(['mood', 'mood', { typtype: 'e' }])).toBe('Nullable(String)');
    const tags = mapColumn(column(['tags', '_text', { element: 'text' }]), OLD);
    expect(tags.ok && [tags.mapping.clickhouse, tags.mapping.nullFlagColumn]).toEqual(['Array(Nullable(String))', 'tags__is_null']);
    const scores = mapColumn(column(['scores', '_int4', { element: 'int4', notNull: true }]), OLD);
    expect(scores.ok && [scores.mapping.clickhouse, scores.mapping.nullFlagColumn]).toEqual(['Array(Nullable(Int32))', null]);
  });

  it('refuses the types it cannot carry exactly, with the type named', () => {
    for (const t of ['point', 'tsvector', 'money', 'int4range']) {
      const m = mapColumn(column(['c', t]), CURRENT);
      expect(m).toEqual({ ok: false, reason: t });
    }
    expect(mapColumn(column(['c', '_point', { element: 'point' }]), CURRENT)).toEqual({ ok: false, reason: 'point[] (arrays of point are not supported)' });
  });
});

describe('values in the message', () => {
  it('text is the JSON string JSON.stringify gives, whatever its characters', () => {
    let seed = 7;
    const next = () => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0);
    // Plain text, and every kind of character JSON escapes or may: quotes, backslashes, control
    // characters, DEL, U+2028, surrogate pairs, lone surrogates of either half.
    const pool = ['a', 'Z', '0', ' ', 'é', '中', '"', '\\', '\n', '\t', '\u0000', '\u001f', '\u007f', '\u2028', '😀', '\ud800', '\udfff', '/'];
    for (let i = 0; i < 5000; i++) {
      const plain = i % 2 === 0;
      let text = '';
      for (let n = next() % 24; n > 0; n--) text += plain ? (pool[next() % 6] as string) : (pool[next() % pool.length] as string);
      expect(jsonText(text)).toBe(JSON.stringify(text));
    }
    expect(encode(['t', 'text'], 'a"b\\c')).toBe(JSON.stringify('a"b\\c'));
  });

  it('integers that fit a double stay numbers; int8, numeric and floats travel as strings (every digit kept)', () => {
    expect(encode(['i', 'int4'], '-2147483648')).toBe('-2147483648');
    expect(encode(['i', 'int8'], '9223372036854775807')).toBe('"9223372036854775807"');
    expect(encode(['n', 'numeric'], '12345678901234567890.000000000001')).toBe('"12345678901234567890.000000000001"');
    expect(encode(['f', 'float8'], '0.1')).toBe('"0.1"');
    expect(encode(['f', 'float8'], 'NaN')).toBe('"NaN"');
    expect(encode(['b', 'bool'], 't')).toBe('true');
    expect(encode(['t', 'text'], 'zoë "x"\n')).toBe('"zoë \\"x\\"\\n"');
  });

  it('timestamps: six fractional digits always, whatever PostgreSQL printed', () => {
    expect(normalizeTimestamp('2024-01-02 03:04:05')).toBe('2024-01-02 03:04:05.000000');
    expect(normalizeTimestamp('2024-01-02 03:04:05.5')).toBe('2024-01-02 03:04:05.500000');
    expect(normalizeTimestamp('2024-01-02 03:04:05.123456+00')).toBe('2024-01-02 03:04:05.123456');
    expect(normalizeTimestamp('infinity')).toBe('infinity');
    expect(encode(['t', 'timestamptz'], '2024-01-02 03:04:05+00')).toBe('"2024-01-02 03:04:05.000000"');
  });

  it('arrays: every element as its text, NULL elements and nesting kept', () => {
    expect(encode(['a', '_int4', { element: 'int4' }], ['1', null, '3'])).toBe('[1,null,3]');
    expect(encode(['a', '_text', { element: 'text' }], [['a', 'b'], ['c', null]])).toBe('[["a","b"],["c",null]]');
  });

  it('parses only real dates and times', () => {
    expect(parseTimestamp('2024-02-29 23:59:59.999999')).toMatchObject({ year: 2024, month: 2, day: 29, micros: '999999' });
    expect(parseTimestamp('2023-02-29 00:00:00')).toBeNull();
    expect(parseTimestamp('2024-13-01 00:00:00')).toBeNull();
    expect(parseTimestamp('2024-01-01 24:00:00')).toBeNull();
    expect(parseTimestamp('0001-01-01T00:00:00.5')).toMatchObject({ year: 1, micros: '500000' });
  });

  it('reads a timestamp character by character exactly as its pattern does', () => {
    let seed = 7;
    const rand = () => ((seed = (seed * 1664525 + 1013904223) >>> 0) / 2 ** 32);
    const pick = (s: string) => s[Math.floor(rand() * s.length)] as string;
    const valid = () =>
      `${String(Math.floor(rand() * 10000)).padStart(4, '0')}-${String(Math.floor(rand() * 14)).padStart(2, '0')}-${String(Math.floor(rand() * 33)).padStart(2, '0')}${pick(' T')}` +
      `${String(Math.floor(rand() * 25)).padStart(2, '0')}:${String(Math.floor(rand() * 61)).padStart(2, '0')}:${String(Math.floor(rand() * 61)).padStart(2, '0')}` +
      (rand() < 0.5 ? '' : `.${String(Math.floor(rand() * 1e7)).slice(0, 1 + Math.floor(rand() * 7))}`);
    const texts = ['', '2024-02-29', '2024-02-29 12:00:00.', '2024-02-29 12:00:00.1234567', '2024-02-29 12:00:00+00', '2024-02-29  12:00:00', '２０２４-02-29 12:00:00', '2024-02-29 12:00:00\n', 'infinity', '-2024-01-01 00:00:00'];
    for (let i = 0; i < 20_000; i++) {
      let t = valid();
      const r = rand();
      if (r < 0.3) {
        const at = Math.floor(rand() * t.length);
        t = t.slice(0, at) + pick('0123456789-: T.x/\u0660') + t.slice(at + (rand() < 0.5 ? 1 : 0));
      } else if (r < 0.4) t = t.slice(0, Math.floor(rand() * t.length));
      texts.push(t);
    }
    let parsed = 0;
    for (const t of texts) {
      const expected = parseTimestampByPattern(t);
      expect(parseTimestamp(t), t).toEqual(expected);
      if (expected) parsed++;
    }
    expect(parsed).toBeGreaterThan(2000); // valid ones were among them
  });
});

describe('the sink writes each ClickHouse type exactly, or refuses the value', () => {
  it('integers: range-checked with every digit; a boolean into UInt8 (Bool on 18.16)', () => {
    const i32 = codec('Int32');
    expect(i32.write(-2147483648)).toBe('-2147483648');
    expect(refusal(() => i32.write(2147483648))).toBe('2147483648 is outside Int32 (-2147483648 to 2147483647)');
    expect(refusal(() => i32.write('twelve'))).toBe('Int32 needs an integer, got "twelve"');
    expect(refusal(() => i32.write(1.5))).toBe('Int32 needs an integer, got 1.5');
    expect(codec('Int64').write('9223372036854775807')).toBe('9223372036854775807');
    expect(codec('UInt8').write(true)).toBe('1');
    expect(i32.literal('42')).toBe('42');
    expect(i32.canon('007')).toBe('7');
    // Short texts and JSON numbers take a path without BigInt: the same bounds and canonical text.
    expect(refusal(() => i32.write('2147483648'))).toBe('2147483648 is outside Int32 (-2147483648 to 2147483647)');
    expect(refusal(() => codec('Int8').write('-129'))).toBe('-129 is outside Int8 (-128 to 127)');
    expect(refusal(() => codec('UInt32').write(-1))).toBe('-1 is outside UInt32 (0 to 4294967295)');
    expect([i32.write('-0'), i32.write('0012'), i32.write(-0), codec('Int64').write('-999999999999999')]).toEqual(['0', '12', '0', '-999999999999999']);
    expect([codec('Int64').canon('9007199254740993'), codec('Int64').canon(42), i32.canon('-0')]).toEqual(['9007199254740993', '42', '0']);
  });

  it('Decimal: its text with every digit, unquoted in an array too (18.16 refuses a quoted one), refused rather than rounded or overflowed', () => {
    const d = codec('Decimal(12, 2)');
    expect(d.write('1234567890.5')).toBe('1234567890.5');
    expect(refusal(() => d.write('1.234'))).toBe('"1.234" has more than 2 decimal places: Decimal(12, 2) would round it');
    expect(refusal(() => d.write('12345678901'))).toBe('"12345678901" has more than 10 digits before the point: too large for Decimal(12, 2)');
    expect(refusal(() => d.write('NaN'))).toBe('Decimal(12, 2) cannot hold "NaN"');
    expect(d.write('1.50')).toBe('1.50'); // trailing zeros are not more places
    expect(codec('Array(Decimal(12, 2))').write(['1.50', '-3'])).toBe('[1.50,-3]');
    expect([d.canon('1.50'), d.canon('-0.0'), d.canon('007.10')]).toEqual(['1.5', '0', '7.1']);
    expect(codec('Decimal(38, 10)').literal('1.5')).toBe("toDecimal128('1.5', 10)");
  });

  it('Float64 on 26.7: numbers and the specials ClickHouse reads', () => {
    const f = codec('Float64', CURRENT);
    expect([f.write('0.1'), f.write('-1e+300'), f.write('NaN'), f.write('-Infinity'), f.write(-0), f.write(1e21)]).toEqual(['0.1', '-1e+300', 'nan', '-inf', '0', '1e+21']);
    expect(codec('Array(Float64)', CURRENT).write(['NaN', 1.5, 'Infinity'])).toBe('[nan,1.5,inf]');
    expect(f.literal('NaN')).toBe("toFloat64('nan')");
    expect(refusal(() => f.write('1,5'))).toBe('Float64 needs a number, got "1,5"');
  });

  it('DateTime (18.16): whole seconds of 1970–2105, refused outside (18.16 would store 0000-00-00 or wrap)', () => {
    const t = codec("Nullable(DateTime('UTC'))");
    expect(t.write('2024-01-02 03:04:05.999999')).toBe('2024-01-02 03:04:05');
    expect(t.write('2024-01-02T03:04:05')).toBe('2024-01-02 03:04:05');
    expect(t.write(null)).toBe('\\N');
    expect([t.zero, codec("DateTime('UTC')").zero]).toEqual(['\\N', '1970-01-01 00:00:00']);
    expect(codec("Array(Nullable(DateTime('UTC')))").write(['2024-01-02 03:04:05', null])).toBe("['2024-01-02 03:04:05',NULL]");
    expect(refusal(() => t.write('1969-12-31 23:59:59.000000'))).toBe(
      "1969-12-31 23:59:59.000000 is outside what ClickHouse's DateTime('UTC') can store (1970-01-01 00:00:00 to 2105-12-31 23:59:59)",
    );
    expect(refusal(() => t.write('2024-02-30 00:00:00'))).toMatch(/needs a timestamp/);
  });

  it('DateTime64(6) on 26.7: microseconds kept, 1900–2299', () => {
    const t = codec("DateTime64(6, 'UTC')", CURRENT);
    expect(t.write('1900-01-01 00:00:00.000001')).toBe('1900-01-01 00:00:00.000001');
    expect(t.zero).toBe('1900-01-01 00:00:00');
    expect(refusal(() => t.write('1899-12-31 23:59:59'))).toMatch(/is outside what ClickHouse's DateTime64\(6, 'UTC'\) can store \(1900-01-01/);
    expect(t.literal('2024-01-01 00:00:00.5')).toBe("toDateTime64('2024-01-01 00:00:00.500000', 6, 'UTC')");
  });

  it('Date and Date32: within what the column holds (26.7 clamps silently outside)', () => {
    expect(refusal(() => codec('Date').write('1969-12-31'))).toBe('1969-12-31 is outside what Date can store (1970-01-01 to 2105-12-31)');
    expect(codec('Date32', CURRENT).write('1900-01-01')).toBe('1900-01-01');
    expect([codec('Date').zero, codec('Date32', CURRENT).zero, codec('Array(Date)').write(['2024-01-02'])]).toEqual(['1970-01-01', '1900-01-01', "['2024-01-02']"]);
    expect(refusal(() => codec('Date32', CURRENT).write('2300-01-01'))).toBe('2300-01-01 is outside what Date32 can store (1900-01-01 to 2299-12-31)');
  });

  it('Bool, UUID, String, arrays; NULL only where the column is Nullable', () => {
    expect(codec('Bool', CURRENT).write(true)).toBe('true');
    expect(codec('Array(Bool)', CURRENT).write([true, false])).toBe('[true,false]');
    expect(refusal(() => codec('Bool', CURRENT).write('t'))).toBe('Bool needs true or false, got "t"');
    expect(codec('UUID').write('A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11')).toBe('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11');
    expect(codec('Array(UUID)').write(['A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'])).toBe("['a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11']");
    expect(codec('UUID').zero).toBe('00000000-0000-0000-0000-000000000000');
    expect(refusal(() => codec('String').write(null))).toBe('NULL in a column of type String');
    expect(refusal(() => codec('Array(String)').write([null]))).toBe('NULL in a column of type String');
    expect(codec('Array(Nullable(Int32))').write([1, null, 3])).toBe('[1,NULL,3]');
    expect(codec('Array(Array(Int32))').write([[1, 2], []])).toBe('[[1,2],[]]');
    expect(refusal(() => codec('Array(Nullable(Int32))').write([[1]]))).toBe('a multi-dimensional array: the ClickHouse column has one dimension');
    expect(codec('LowCardinality(String)', CURRENT).write('happy')).toBe('happy');
    expect(codec('LowCardinality(Nullable(String))', CURRENT).write(null)).toBe('\\N');
    expect([codec('String').zero, codec('Nullable(String)').zero, codec('Array(String)').zero]).toEqual(['', '\\N', '[]']);
    expect(chCodec('Map(String, String)')).toBeNull();
  });
});

describe('TabSeparated escapes (issue 14: ClickHouse 18.16 and 26.7 read them the same way)', () => {
  it('a field escapes backslash, tab, line feed, carriage return, NUL, backspace and form feed; a quoted value also the quote', () => {
    const s = codec('String');
    const text = 'a\\b\tc\nd\re\u0000f\bg\fh\'i"j';
    expect(s.write(text)).toBe(String.raw`a\\b\tc\nd\re\0f\bg\fh'i"j`);
    expect(codec('Array(String)').write([text, ''])).toBe(String.raw`['a\\b\tc\nd\re\0f\bg\fh\'i"j','']`);
    expect(s.write('\\N')).toBe(String.raw`\\N`); // the text \N, not NULL
    expect(s.write('émoji 🎉 ok')).toBe('émoji 🎉 ok');
    expect(tsvText('plain')).toBe('plain');
    expect(quotedText("it's")).toBe(String.raw`'it\'s'`);
  });

  it('no field holds a raw tab or line feed, and unescaping gives the text back (random text)', () => {
    const chars = ['a', 'é', '🎉', '\\', '\t', '\n', '\r', '\u0000', '\b', '\f', "'", '"', ' ', 'N', '0'];
    let seed = 7;
    const rand = () => ((seed = (seed * 1664525 + 1013904223) >>> 0) / 2 ** 32);
    const unescape = (f: string) => f.replace(/\\(.)/gsu, (_, c: string) => ({ t: '\t', n: '\n', r: '\r', '0': '\u0000', b: '\b', f: '\f' })[c] ?? c);
    for (let i = 0; i < 2000; i++) {
      const text = Array.from({ length: Math.floor(rand() * 12) }, () => chars[Math.floor(rand() * chars.length)]).join('');
      const field = tsvText(text);
      expect(field).not.toMatch(/[\t\n]/);
      expect(unescape(field)).toBe(text);
      const q = quotedText(text);
      expect(q.slice(1, -1)).not.toMatch(/(^|[^\\])(\\\\)*'/); // every quote inside is escaped
      expect(unescape(q.slice(1, -1))).toBe(text);
    }
  });
});
