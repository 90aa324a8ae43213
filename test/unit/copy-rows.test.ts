// The backlog path's messages (src/tables/copy-rows.ts: written from the bytes of COPY text rows)
// against the row path's (encodeFields of each mapping's encode of what node-postgres returns for
// the same values): byte for byte, on random values of every wire kind, plain and not. The same on
// real PostgreSQL output: test/integration/producer-copy-rows.test.ts.
import { describe, expect, it } from 'vitest';
import { encodeFields, fieldPrefixes } from '../../src/tables/codec.js';
import { ByteBuffer, canonicalInteger } from '../../src/common/bytes.js';
import { CopyRows, unescapeCopy, upsertValues, writeUpsert, type ColumnWriter } from '../../src/tables/copy-rows.js';
import { mapColumn, type ColumnMapping } from '../../src/tables/pg-types.js';
import { capabilities } from '../../src/tables/server.js';
import { column, type ColumnDef } from './support/specs.js';

const COLUMNS: ColumnDef[] = [
  ['i2', 'int2'],
  ['i4', 'int4'],
  ['i8', 'int8'],
  ['n', 'numeric'],
  ['f', 'float8'],
  ['b', 'bool'],
  ['t', 'text'],
  ['u', 'uuid'],
  ['d', 'date'],
  ['ts', 'timestamp'],
  ['tz', 'timestamptz'],
  ['j', 'jsonb'],
  ['ints', 'int4[]', { element: 'int4' }],
  ['texts', 'text[]', { element: 'text' }],
  ['bools', 'bool[]', { element: 'bool' }],
  ['tss', 'timestamp[]', { element: 'timestamp' }],
];
const caps = capabilities({ major: 99, minor: 0 });
const mappings: ColumnMapping[] = COLUMNS.map((c) => {
  const m = mapColumn(column(c), caps);
  if (!m.ok) throw new Error(m.reason);
  return m.mapping;
});
const prefixes = fieldPrefixes(COLUMNS.map((c) => c[0]));
const writers: ColumnWriter[] = mappings.map((m, i) => ({ prefix: Buffer.from(prefixes[i] as string), wire: m.wire, encode: m.encode }));

// A seeded generator: a failure names its seed.
function rng(seed: number) {
  let s = seed >>> 0 || 1;
  const next = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 32;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)] as T;
  return { next, int, pick };
}
type R = ReturnType<typeof rng>;

// Characters that matter: COPY's escapes, JSON's, control characters, DEL, multi-byte UTF-8, a
// lone surrogate's neighbours (U+2028, an emoji), and plain ones.
const CHARS = ['a', 'Z', '0', ' ', '"', '\\', '\n', '\r', '\t', '\b', '\f', '\v', '\u0001', '\u001f', '\u007f', 'é', '日', '\u2028', '😀', '/', ',', '{', '}', 'N'];
const text = (r: R, plainOnly = false) => Array.from({ length: r.int(12) }, () => (plainOnly ? r.pick(['a', 'b', ' ', '-', ':', '.', '9']) : r.pick(CHARS))).join('');
const pad = (n: number, w: number) => String(n).padStart(w, '0');
const timestamp = (r: R) => {
  const base = `${pad(1 + r.int(9999), 4)}-${pad(1 + r.int(12), 2)}-${pad(1 + r.int(28), 2)} ${pad(r.int(24), 2)}:${pad(r.int(60), 2)}:${pad(r.int(60), 2)}`;
  const fraction = r.int(8) === 0 ? '' : `.${String(r.int(1_000_000)).padStart(6, '0').slice(0, 1 + r.int(6))}`;
  return r.pick([`${base}${fraction}`, `${base}${fraction}+00`, 'infinity', '-infinity', `${base} BC`, `1${base}`, `${base}.1234567`, `${base}+05:30`, `${base}-00`, `${base}${fraction}`]);
};

/** PostgreSQL's text of a random value of column i (null: NULL), as `select` gives it. */
function value(r: R, i: number): string | null {
  if (r.int(8) === 0) return null;
  const typ = (COLUMNS[i] as ColumnDef)[1];
  switch (typ) {
    case 'int2':
    case 'int4':
    case 'int8':
      return String(r.int(2) ? -r.int(2 ** 31) : r.int(2 ** 31));
    case 'numeric':
      return r.pick(['0', '-1.50', 'NaN', '123456789012345678901234567890.000001']);
    case 'float8':
      return r.pick(['0.1', '-0', 'Infinity', '-Infinity', 'NaN', '5e-324', '1.7976931348623157e+308']);
    case 'bool':
      return r.pick(['t', 'f']);
    case 'uuid':
      return 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11';
    case 'date':
      return r.pick(['2024-02-29', 'infinity', '0044-03-15 BC']);
    case 'timestamp':
    case 'timestamptz':
      return timestamp(r);
    case 'jsonb':
      return JSON.stringify({ k: text(r) });
    case 'int4[]':
      return JSON.stringify(Array.from({ length: r.int(4) }, () => (r.int(5) === 0 ? null : String(r.int(1000) - 500))));
    case 'text[]':
      return JSON.stringify(Array.from({ length: r.int(4) }, () => (r.int(5) === 0 ? null : r.int(3) === 0 ? [text(r)] : text(r))));
    case 'bool[]':
      return JSON.stringify([r.pick(['t', 'f']), null]);
    case 'timestamp[]':
      return JSON.stringify([timestamp(r), null]);
    default:
      return text(r, r.int(2) === 0);
  }
}

/**
 * Adds a row as node-postgres's parser hands it over: a span of a larger buffer, here between
 * tabs and a newline that are no part of it (the row's fields are found within its span only).
 */
function addRow(rows: CopyRows, text: string): void {
  const row = Buffer.from(text);
  rows.add(Buffer.concat([Buffer.from('\t\t'), row, Buffer.from('\t9\t\n')]), 2, 2 + row.length);
}

/** A value in COPY's text format (PostgreSQL's CopyAttributeOutText). */
const copyText = (v: string | null) =>
  v === null ? '\\N' : v.replace(/[\\\n\r\t\b\f\v]/g, (c) => `\\${({ '\\': '\\', '\n': 'n', '\r': 'r', '\t': 't', '\b': 'b', '\f': 'f', '\v': 'v' } as Record<string, string>)[c]}`);

/** The row path: what node-postgres returns (json parsed), then each mapping's encode. */
const rowPath = (values: Array<string | null>, version: string) =>
  encodeFields(
    prefixes,
    values.map((v, i) => (v === null ? 'null' : (mappings[i] as ColumnMapping).encode((mappings[i] as ColumnMapping).wire === 'json' ? JSON.parse(v) : v))),
    'upsert',
    version,
  );

describe('upsert messages written from COPY rows', () => {
  it('are the row path’s bytes, on random values of every kind (plain, escaped, NULL, odd timestamps)', () => {
    for (let seed = 1; seed <= 40; seed++) {
      const r = rng(seed);
      const rows = new CopyRows(COLUMNS.length + 2);
      const expected: Buffer[] = [];
      for (let k = 0; k < 50; k++) {
        const values = COLUMNS.map((_, i) => value(r, i));
        const key = text(r);
        addRow(rows, `${[...values, key].map(copyText).join('\t')}\t${k === 7 ? 't' : 'f'}\n`);
        expected.push(rowPath(values, String(1000 + k)));
      }
      const out = new ByteBuffer(16); // small (1 KiB): it has to grow
      const spans: number[] = [];
      for (let k = 0; k < rows.count; k++) spans.push(writeUpsert(out, rows, k, writers, String(1000 + k)), out.length);
      for (let k = 0; k < rows.count; k++) {
        const got = out.buf.subarray(spans[2 * k], spans[2 * k + 1]);
        expect(got.toString(), `seed ${seed} row ${k}`).toBe(expected[k]?.toString());
        expect(got.equals(expected[k] as Buffer), `seed ${seed} row ${k}`).toBe(true);
      }
    }
  });

  it('write the version from a field of the row (a change-log claim) as the row path writes its text', () => {
    for (let seed = 1; seed <= 10; seed++) {
      const r = rng(seed);
      const rows = new CopyRows(COLUMNS.length + 1); // the columns, then the version
      const versions: string[] = [];
      const expected: Buffer[] = [];
      for (let k = 0; k < 30; k++) {
        const values = COLUMNS.map((_, i) => value(r, i));
        const version = String(1 + Math.floor(r.next() * 10 ** (1 + (k % 18))));
        addRow(rows, `${[...values, version].map(copyText).join('\t')}\n`);
        versions.push(version);
        expected.push(rowPath(values, version));
      }
      const picks = Array.from({ length: rows.count }, (_, k) => (k % 5 === 3 ? -1 : k));
      const byField = upsertValues(rows, writers, picks, COLUMNS.length);
      const byText = upsertValues(rows, writers, picks, versions);
      for (let k = 0; k < rows.count; k++) {
        if (picks[k] === -1) {
          expect([byField[k], byText[k]]).toEqual([null, null]);
          continue;
        }
        expect(byField[k]?.toString(), `seed ${seed} row ${k}`).toBe(expected[k]?.toString());
        expect(byText[k]?.equals(expected[k] as Buffer), `seed ${seed} row ${k}`).toBe(true);
      }
    }
  });

  it('reads the other fields as node-postgres would: the key, is_last, NULL', () => {
    const rows = new CopyRows(3);
    addRow(rows, 'a\\tb\\\\c\\nd\tt\t\\N\n');
    addRow(rows, '\\\\N\tf\t日本\n');
    expect([rows.text(0, 0), rows.isTrue(0, 1), rows.text(0, 2), rows.isNull(0, 2)]).toEqual(['a\tb\\c\nd', true, null, true]);
    expect([rows.text(1, 0), rows.isTrue(1, 1), rows.text(1, 2), rows.isNull(1, 0)]).toEqual(['\\N', false, '日本', false]);
    expect(unescapeCopy(Buffer.from('x\\by\\fz\\v\\r'), 0, 11)).toBe('x\by\fz\v\r');
  });

  it('reads an integer-like field as exactly its text, canonical or not', () => {
    // text() makes a canonical integer's text with String(); any other text (a leading zero or
    // plus, -0, 16 digits and more, a non-digit) must still come back as its bytes say.
    const texts = ['0', '7', '-7', '10', '-1234567', '999999999999999', '-999999999999999', '1000000000000000', '9007199254740993', '00', '007', '-0', '+5', '-', '', '1e3', '12a', '١٢', ' 1', '1 ', '0x1F', '18446744073709551615'];
    const r = rng(7);
    for (let k = 0; k < 2000; k++) {
      const length = 1 + r.int(18);
      let t = (r.int(3) === 0 ? '-' : '') + Array.from({ length }, () => String(r.int(10))).join('');
      if (r.int(4) === 0) t = t.replace(/^(-?)/, '$10'); // a leading zero now and then
      texts.push(t);
    }
    const rows = new CopyRows(2);
    for (const t of texts) addRow(rows, `${t}\t${t}\n`);
    for (let k = 0; k < texts.length; k++) expect([rows.text(k, 0), rows.text(k, 1)], texts[k]).toEqual([texts[k], texts[k]]);
    expect(canonicalInteger(Buffer.from('-42'), 0, 3)).toBe(-42);
    for (const t of ['007', '-0', '+5', '1000000000000000', '']) expect(canonicalInteger(Buffer.from(t), 0, t.length), t).toBeNaN();
  });

  it('refuses a row of another shape than the claim’s, rather than misreading it', () => {
    const rows = new CopyRows(3);
    expect(() => addRow(rows, '1\t2\n')).toThrow(/2 fields where 3/);
    expect(() => addRow(rows, '1\t2\t3\t4\n')).toThrow(/where 3/);
    expect(rows.count).toBe(0);
  });

  it('copies consecutive rows of one buffer at once, before that buffer changes', () => {
    // As the parser hands them over: CopyData frames (a 5-byte header before each row) in buffers
    // that are overwritten once their rows are handed over; `more` while the next row is in the same one.
    const texts = Array.from({ length: 500 }, (_, k) => `${k}\t${'y'.repeat(k % 300)}\tt\n`);
    const rows = new CopyRows(3);
    for (let from = 0; from < texts.length; from += 37) {
      const mine = texts.slice(from, from + 37);
      const buf = Buffer.concat(mine.map((t) => Buffer.concat([Buffer.from('d\0\0\0\0'), Buffer.from(t)])));
      let at = 0;
      mine.forEach((t, i) => {
        rows.add(buf, at + 5, at + 5 + Buffer.byteLength(t), i < mine.length - 1);
        at += 5 + Buffer.byteLength(t);
      });
      buf.fill('z'); // the parser's next read
    }
    expect(rows.count).toBe(500);
    for (const k of [0, 1, 36, 37, 299, 499]) expect([rows.text(k, 0), rows.text(k, 1), rows.isTrue(k, 2)]).toEqual([String(k), 'y'.repeat(k % 300), true]);
  });

  it('is not read while a row waits for the rest of its run', () => {
    const rows = new CopyRows(1);
    rows.add(Buffer.from('a\nb\n'), 0, 2, true);
    expect(() => rows.count).toThrow(/before their last row/);
  });

  it('keeps every row while its buffers grow (thousands of rows, long values)', () => {
    const rows = new CopyRows(2);
    const long = 'x'.repeat(70_000);
    for (let k = 0; k < 3000; k++) addRow(rows, `${k}\t${k % 1000 === 0 ? long : `v${k}`}\n`);
    expect(rows.count).toBe(3000);
    expect([rows.text(0, 1)?.length, rows.text(1, 1), rows.text(2999, 0), rows.text(2000, 1)?.length]).toEqual([70_000, 'v1', '2999', 70_000]);
  });
});
