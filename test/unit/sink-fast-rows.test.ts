// The sink reads a message by a learnt shape (message-shapes.ts) instead of JSON.parse (issue 14).
// Whatever a message holds, that must change nothing: the same TabSeparated bytes, the same rows
// refused with the same reasons. Two sinks over fake ClickHouses get the same random batches, one
// as raw values (the consumer's way: shapes), one decoded beforehand (JSON.parse only).
import type { Readable } from 'node:stream';
import type { ClickHouseClient } from '@clickhouse/client';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/common/logger.js';
import { TableSink, type SinkInput } from '../../src/sink/sink.js';
import { messageShape, tokenValue } from '../../src/sink/message-shapes.js';
import { decodeMessage, encodeValue, encodeTruncate } from '../../src/tables/codec.js';
import { capabilities } from '../../src/tables/server.js';

const log = createLogger({ level: 'silent', secrets: [] });

const COLUMNS: Array<[name: string, type: string, key?: boolean]> = [
  ['id', 'Int64', true],
  ['name', 'String'],
  ['note', 'Nullable(String)'],
  ['kind', 'LowCardinality(String)'],
  ['n', 'Int32'],
  ['big', 'Nullable(Int64)'],
  ['f', 'Float64'],
  ['price', 'Decimal(10, 2)'],
  ['at', "DateTime('UTC')"],
  ['at6', "DateTime64(6, 'UTC')"],
  ['u', 'Nullable(UUID)'],
  ['flag', 'UInt8'],
  ['day', 'Date'],
  ['small', 'Int8'],
  ['at3', "DateTime64(3, 'UTC')"],
  ['at9', "Nullable(DateTime64(9, 'UTC'))"],
  ['tags', 'Array(String)'],
  ['tags__is_null', 'UInt8'],
];

/** A ClickHouse with one empty table: it records every insert's rows. */
function fakeClickHouse() {
  const inserts: string[] = [];
  const answer = (data: unknown[]) => ({ json: async () => data });
  const client = {
    query: async ({ query }: { query: string }) => {
      if (query.startsWith('SELECT name, type')) {
        return answer([
          ...COLUMNS.map(([name, type, key]) => ({ name, type, sorting: key ? 1 : 0, kind: '' })),
          ...['_version', '_deleted', '_kafka_partition', '_kafka_offset', '_ingested_at'].map((n) => ({ name: n, type: n === '_ingested_at' ? "DateTime('UTC')" : 'UInt64', sorting: 0, kind: '' })),
        ]);
      }
      if (/ AS v FROM /.test(query)) return answer([{ v: '0' }]);
      return answer([]);
    },
    exec: async ({ values }: { query: string; values: Readable }) => {
      // The insert time differs between the two sinks: not part of the comparison. Latin-1: each
      // byte as it is, so that bytes that are no UTF-8 are compared too.
      const body = Buffer.concat(await values.toArray()).toString('latin1');
      inserts.push(...body.split('\n').slice(0, -1).map((line) => line.replace(/\t[^\t]*$/, '')));
      return { stream: { resume() {} } };
    },
    command: async () => ({}),
  };
  return { client: client as unknown as ClickHouseClient, inserts };
}

function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** Where a string's bytes are no valid UTF-8 (replaced after encoding: JSON text cannot say it). */
const INVALID_UTF8 = 'INVALID_UTF8';
/** Member texts per column: mostly what the producer writes, and everything else a topic may carry. */
const VALUES: Record<string, string[]> = {
  id: ['"1"', '7', '"9007199254740993"', '"-12"', '"007"', '1.5', '"x"', 'null', 'true', '1e3', '"123456789012345"', '123456789012345', '1234567890123456', '"-0"', '-0', '"0"', '0', '-5', '"1\\u0032"'],
  name: ['"alice"', '""', '"a \\"quoted\\" name"', '"line\\nbreak"', '"tab\\there"', '"\\u00e9t\\u00e9"', '"slash\\/"', '"émoji 🎉 ok"', '"\\ud83c\\udf89"', '"\\ud800"', '12', 'null', 'true', '"back\\\\slash"', `"${INVALID_UTF8}"`, '"café"'],
  note: ['"x"', 'null', '"\\u0007"', '3'],
  kind: ['"login"', '"logout"', 'null'],
  n: ['1', '-2147483648', '2147483647', '2147483648', '"5"', '1.0', '-0', '1e2', 'null', '"0x10"', '"-0"', '"00"', '-2147483649', '"2147483647"'],
  big: ['"9223372036854775807"', '"9223372036854775808"', 'null', '12', '"-9223372036854775808"'],
  f: ['1.5', '"1.5"', '"NaN"', '"Infinity"', '"-Infinity"', '1e308', '-0', '"abc"', '0.1', '123456789012345678901234567890'],
  price: ['"12.34"', '"12.345"', '"99999999.99"', '"100000000.00"', '12.5', '"-0.10"', '"1e2"', 'null'],
  at: [
    '"2026-11-26 17:00:00.123456"', '"2026-11-26 17:00:00"', '"2026-02-30 00:00:00"', '"1969-12-31 23:59:59"', '"2106-01-01 00:00:00"', '"2026-11-26T01:02:03.5"', '"yesterday"', 'null',
    '"2026-11-26 17:00:00.1234567"', '"2026-11-26 17:00:00."', '"2024-02-29 00:00:00"', '"2023-02-29 00:00:00"', '"2026-11-26 24:00:00"', '"2026-11-26 17:60:00"', '"2105-12-31 23:59:59"', '"2026-11-26 17:00:0\\u0030"', '"2026-11-26 17:00:00+00"',
  ],
  at6: ['"2026-11-26 17:00:00.123456"', '"2026-11-26 17:00:00.1"', '"0001-01-01 00:00:00"', '"9999-12-31 23:59:59.999999"', '"2026-11-26T17:00:00.5"', '"1970-01-01 00:00:00"', '"2299-12-31 23:59:59.999999"', '"2026-1-26 17:00:00"'],
  at3: ['"2026-11-26 17:00:00.123456"', '"2026-11-26 17:00:00.12"', '"2026-11-26 17:00:00"', '"2026-11-26T17:00:00.9999"'],
  at9: ['"2026-11-26 17:00:00.123456"', 'null', '"2026-11-26 17:00:00"', '"2026-11-26 17:00:00.1"'],
  small: ['1', '-128', '127', '128', '"-129"', '"5"', '-129'],
  u: ['"123e4567-e89b-12d3-a456-426614174000"', '"123E4567-E89B-12D3-A456-426614174000"', '"not-a-uuid"', 'null'],
  flag: ['1', '0', 'true', 'false', '256', 'null'],
  day: ['"2026-11-26"', '"2026-13-01"', '"1970-01-01"', '"2106-01-01"'],
  tags: ['["a","b"]', '[]', 'null', '[null]', '"a"'],
};
const NAMES = COLUMNS.filter(([n]) => !n.endsWith('__is_null')).map(([n]) => n);

function randomValue(rand: () => number, version: number, rows: number): Buffer {
  const pick = <X,>(xs: X[]) => xs[Math.floor(rand() * xs.length)] as X;
  const r = rand();
  if (r < 0.02) return Buffer.from(pick(['', 'not json', '{"id":', '[1,2]', '{"id":"1","_op":"merge","_version":1}', '{"id":"1","_op":"upsert","_version":-1}', 'null']));
  if (r < 0.04) return Buffer.from(`{"id":"${Math.floor(rand() * rows)}","_op":"delete","_version":${version}}`);
  if (r < 0.05) return Buffer.from(`{"id":"${Math.floor(rand() * rows)}","name":"gone","_op":"delete","_version":${version}}`);
  if (r < 0.06) return Buffer.from(`{"id":"${Math.floor(rand() * rows)}","name":"old message of f141f4e"}`);
  if (r < 0.07) return Buffer.from(`{ "id": "${Math.floor(rand() * rows)}", "name": "spaced", "_op": "upsert", "_version": ${version} }`);
  // An upsert: usually the producer's valid values (the first of each list but id), sometimes anything.
  const names = rand() < 0.05 ? NAMES.filter((n) => n !== 'note') : NAMES; // a column missing
  const fragments = names.map((n) => (n === 'id' ? (rand() < 0.9 ? `"${Math.floor(rand() * rows)}"` : pick(VALUES.id as string[])) : rand() < 0.85 ? (VALUES[n] as string[])[0] as string : pick(VALUES[n] as string[])));
  const value = encodeValue(names, fragments, 'upsert', String(version));
  const bad = value.indexOf(INVALID_UTF8);
  if (bad >= 0) value.set([0x61, 0xc3, 0x28, 0xff], bad);
  return value;
}

/**
 * The values as the consumer gets them from a fetch: spans of one buffer (SinkInput.bytes), with
 * bytes between them that would continue a member or close a message, were they read past the span.
 */
function asSpans(raw: readonly SinkInput<number>[]): SinkInput<number>[] {
  const FILLER = Buffer.from('7}"],null,"\\');
  const whole = Buffer.concat(raw.flatMap((r) => (r.value ? [FILLER, r.value, FILLER] : [])));
  let at = 0;
  return raw.map((r) => {
    // A null value (a tombstone): no span, as a FetchedRecord says it — valueAt -1 (its valueEnd is
    // where the key ended).
    if (!r.value) return { bytes: whole, valueAt: -1, valueEnd: at, value: null, topic: r.topic, partition: r.partition, offset: r.offset, ref: r.ref };
    const valueAt = at + FILLER.length;
    const valueEnd = valueAt + (r.value as Buffer).length;
    at = valueEnd + FILLER.length;
    return { bytes: whole, valueAt, valueEnd, get value() { return whole.subarray(valueAt, valueEnd); }, topic: r.topic, partition: r.partition, offset: r.offset, ref: r.ref };
  });
}

async function both(batches: Array<Array<Buffer | null>>) {
  const a = fakeClickHouse();
  const b = fakeClickHouse();
  const c = fakeClickHouse();
  const caps = capabilities({ major: 18, minor: 16 });
  const byShape = await TableSink.open<number>(a.client, 'db', 't', caps, log);
  const byParse = await TableSink.open<number>(b.client, 'db', 't', caps, log);
  const bySpan = await TableSink.open<number>(c.client, 'db', 't', caps, log);
  const results: unknown[][] = [[], []];
  let offset = 0;
  for (const values of batches) {
    const raw: SinkInput<number>[] = values.map((value) => ({ value, topic: 'topic', partition: offset % 3, offset: String(offset), ref: offset++ }));
    // The same messages read in place, as spans of a fetch's bytes: the same rows, the same refusals.
    const z = await bySpan.write(asSpans(raw));
    const decoded: SinkInput<number>[] = [];
    const badJson: Array<{ ref: number; reason: string }> = [];
    for (const r of raw) {
      const d = decodeMessage(r.value ?? null);
      if (d.ok) decoded.push({ message: d.message, topic: r.topic, partition: r.partition, offset: r.offset, ref: r.ref });
      else badJson.push({ ref: r.ref, reason: d.reason });
    }
    const x = await byShape.write(raw);
    const y = await byParse.write(decoded);
    const sortRejected = (list: Array<{ ref: number; reason: string }>) => [...list].sort((p, q) => p.ref - q.ref);
    expect({ ...z, rejected: sortRejected(z.rejected) }).toEqual({ ...x, rejected: sortRejected(x.rejected) });
    results[0]?.push({ ...x, rejected: sortRejected(x.rejected) });
    results[1]?.push({ ...y, rejected: sortRejected([...badJson, ...y.rejected]) });
  }
  expect(c.inserts).toEqual(a.inserts);
  expect(bySpan.reads).toEqual(byShape.reads);
  return { results, inserts: [a.inserts, b.inserts], sink: byShape };
}

describe('reading messages by shape (issue 14)', () => {
  it('writes the same rows and refuses the same messages, for the same reasons, as JSON.parse', async () => {
    const rand = rng(20261126);
    let version = 1;
    // A few null values (tombstones) among them.
    const batches = Array.from({ length: 40 }, () => Array.from({ length: 250 }, () => (rand() < 0.01 ? null : randomValue(rand, version++, 400))));
    const { results, inserts, sink } = await both(batches);
    expect(inserts[0]).toEqual(inserts[1]);
    expect(results[0]).toEqual(results[1]);
    // Not vacuous: messages went by shape (not those with a refused value: the slow way refuses
    // them), rows were written and messages were refused.
    expect(sink.reads.shape).toBeGreaterThan(0.4 * 40 * 250);
    expect(sink.reads.parsed).toBeGreaterThan(100);
    expect((inserts[0] as string[]).length).toBeGreaterThan(2000);
    expect(results[0]?.some((r) => (r as { rejected: unknown[] }).rejected.length > 0)).toBe(true);
  });

  it('learns the shapes of upserts and deletes, and reads truncate markers and old messages the slow way', async () => {
    const upsert = (id: number, v: number) => encodeValue(NAMES, NAMES.map((n) => (n === 'id' ? `"${id}"` : (VALUES[n] as string[])[0] as string)), 'upsert', String(v));
    const del = (id: number, v: number) => Buffer.from(`{"id":"${id}","_op":"delete","_version":${v}}`);
    const { results, inserts, sink } = await both([
      [upsert(1, 1), del(2, 2), upsert(3, 3), del(4, 4), encodeTruncate('5'), Buffer.from('{"id":"6","name":"v0"}')],
      [upsert(7, 6), del(8, 7), upsert(9, 8)],
    ]);
    expect(inserts[0]).toEqual(inserts[1]);
    expect(results[0]).toEqual(results[1]);
    // First batch: the first upsert and delete taught their shapes; the second batch is all by shape.
    expect(sink.reads).toEqual({ shape: 5, parsed: 4 });
  });
});

describe('message shapes', () => {
  const shape = messageShape(['id', 'we"ird.name*']);
  const read = shape.newRead();
  /** The members' texts, then _op and _version; null when the message is not of the shape. */
  const members = (text: string) => {
    const v = Buffer.from(text);
    if (!shape.read(v, read)) return null;
    const texts = shape.fields.map((_, i) => v.toString('utf8', read.start[i], read.end[i]));
    return [...texts, read.isDelete ? 'delete' : 'upsert', v.toString('latin1', read.versionStart, read.versionEnd)];
  };
  it('matches only flat JSON of exactly that shape', () => {
    expect(members('{"id":"1","we\\"ird.name*":null,"_op":"upsert","_version":3}')).toEqual(['"1"', 'null', 'upsert', '3']);
    expect(members('{"id":"1","we\\"ird.name*":["a",null,2],"_op":"delete","_version":0}')).toEqual(['"1"', '["a",null,2]', 'delete', '0']);
    for (const text of [
      '{"id":"1","we\\"ird.name*":[[1]],"_op":"upsert","_version":3}',
      '{"id":"1","we\\"ird.name*":[1,],"_op":"upsert","_version":3}',
      '{"id":"1","we\\"ird.name*":{},"_op":"upsert","_version":3}',
      '{"id": "1","we\\"ird.name*":1,"_op":"upsert","_version":3}',
      '{"we\\"ird.name*":1,"id":"1","_op":"upsert","_version":3}',
      '{"id":"1","we\\"ird.name*":1,"_op":"truncate","_version":3}',
      '{"id":"1","we\\"ird.name*":1,"_op":"upsert","_version":03}',
      '{"id":"1","we\\"ird.name*":1,"_op":"upsert","_version":-3}',
      '{"id":"1","we\\"ird.name*":1,"_op":"upsert"}',
      '{"id":"1\u0001","we\\"ird.name*":1,"_op":"upsert","_version":3}',
      '{"id":"\\x","we\\"ird.name*":1,"_op":"upsert","_version":3}',
      '{"id":01,"we\\"ird.name*":1,"_op":"upsert","_version":3}',
      '{"id":"1","we\\"ird.name*":1,"_op":"upsert","_version":3}x',
    ]) {
      expect(members(text), text).toBe(null);
    }
  });
  it('reads a message where it is, within its span of a larger buffer, and nothing past it', () => {
    const text = '{"id":"1","we\\"ird.name*":25,"_op":"upsert","_version":3}';
    const whole = Buffer.from(`xx${text}7}`);
    const from = 2;
    const to = from + Buffer.byteLength(text);
    expect(shape.read(whole, read, from, to)).toBe(true);
    expect(whole.toString('latin1', read.versionStart, read.versionEnd)).toBe('3');
    expect(whole.toString('latin1', read.start[1], read.end[1])).toBe('25');
    // Cut anywhere before its end, it is no message of the shape, whatever follows in the buffer.
    for (let cut = from; cut < to; cut++) expect(shape.read(whole, read, from, cut), String(cut)).toBe(false);
    // A member cut by the span's end: a string, an escape, a literal.
    for (const t of ['{"id":"1', '{"id":"1\\', '{"id":"\\u00', '{"id":nul', '{"id":[1']) {
      const b = Buffer.from(`${t}","we\\"ird.name*":1,"_op":"upsert","_version":3}`);
      expect(shape.read(b, read, 0, Buffer.byteLength(t))).toBe(false);
    }
  });

  it('reads each member as JSON.parse does', () => {
    for (const t of ['"a"', '""', '"\\n\\u00e9\\"\\\\\\/"', '"🎉"', 'null', 'true', 'false', '0', '-0', '1.5e-7', '123456789012345678901234567890', '-1E+2']) {
      expect(Object.is(tokenValue(t), JSON.parse(t)) || JSON.stringify(tokenValue(t)) === JSON.stringify(JSON.parse(t)), t).toBe(true);
    }
    expect(Object.is(tokenValue('-0'), -0)).toBe(true);
  });
});
