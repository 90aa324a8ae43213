// Issue 12 — the ClickHouse side on a current engine (ClickHouse 26.7, embedded through npm chdb):
// the DDL `streamer migrate` makes for that version, the exact JSONEachRow bytes the sink writes
// for messages the real producer made from PostgreSQL rows of every mapped type, read back value
// for value; the sink's version check, a redelivery, updates, deletes and TRUNCATE; the view and
// FINAL with `ReplacingMergeTree(_version, _deleted)`, after OPTIMIZE … FINAL too; and verify's and
// status's queries, checked against PostgreSQL's side. The PostgreSQL side is the real server;
// only ClickHouse is the embedded engine (it cannot serve HTTP, so @clickhouse/client's own path
// is proven on 18.16 only).
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/common/logger.js';
import { createPool } from '../../src/capture/db.js';
import { migratePostgres } from '../../src/capture/pg-migrate.js';
import { drainBatch, loadSources, type TableSource } from '../../src/capture/producer.js';
import type { Publisher } from '../../src/capture/publisher.js';
import { CH_STATUS } from '../../src/ops/status.js';
import { bucketSums, chVerifyQueries, pgVerifyQueries, unprefixed, verifyPlan } from '../../src/ops/verify.js';
import { migrateClickHouse } from '../../src/sink/clickhouse-migrate.js';
import { chColumns, viewName } from '../../src/sink/ddl.js';
import { TableSink, type SinkInput } from '../../src/sink/sink.js';
import { canonicalPair } from '../../src/tables/canonical.js';
import { decodeMessage, type EncodedMessage } from '../../src/tables/codec.js';
import { pgIdent } from '../../src/tables/identifiers.js';
import { PG_TEXT_SETTINGS } from '../../src/tables/pg-types.js';
import { capabilities, parseServerVersion } from '../../src/tables/server.js';
import type { TableSpec } from '../../src/tables/spec.js';
import { isolate, type Isolated } from '../support/isolation.js';
import { EVERY_TYPE_DDL, EVERY_TYPE_ROWS } from '../support/every-type.js';
import { withPg } from '../support/pg.js';
import { openEngine, type Engine } from './engine.js';

const logger = createLogger({ level: 'warn' });
const DB = 'streamer_current';

/** Values only a current server holds: dates and times of 1900–2299, microseconds, wide decimals. */
const CURRENT_DDL = `
  CREATE TABLE current_edges (id int PRIMARY KEY, c_date date, c_ts timestamp, c_tstz timestamptz,
                              c_wide numeric(50,10), c_real real, c_double double precision, c_bool boolean NOT NULL DEFAULT false);
  INSERT INTO current_edges VALUES
    (1, '1900-01-01', '1900-01-01 00:00:00.000001', '2299-12-31 23:59:59.999999+00', '-1234567890123456789012345678901234567890.0123456789', '1e-45', '5e-324', true),
    (2, '2299-12-31', '2299-12-31 23:59:59.999999', '1900-01-01 00:00:00+00', '0.0000000001', '-0', '0.30000000000000004', false),
    (3, '1969-12-31', '1969-12-31 23:59:59.5', '1969-12-31 23:59:59.5-01', '0', 'NaN', '-Infinity', true);
  CREATE SCHEMA "Sales";
  CREATE TABLE "Sales"."Order Lines" ("Order" bigint, "line no" int, "Select" text, PRIMARY KEY ("Order", "line no"));
  INSERT INTO "Sales"."Order Lines" VALUES (1, 1, 'a'), (1, 2, 'b'), (2, 1, NULL);`;

let engine: Engine;
let iso: Isolated;
let pool: pg.Pool;
let sources: TableSource[];
const sinks = new Map<string, TableSink<number>>();
let offset = 0;
let version: ReturnType<typeof parseServerVersion>;

/** Everything pending in PostgreSQL, as the real producer publishes it (a publisher that keeps the messages). */
async function produce(source: TableSource): Promise<EncodedMessage[]> {
  const out: EncodedMessage[] = [];
  const publisher: Publisher = {
    connect: async () => {},
    close: async () => {},
    abandon: () => {},
    partitions: async () => [0, 1],
    publish: async (_topic, messages) => {
      out.push(...messages);
      return [];
    },
  };
  for (;;) if ((await drainBatch(pool, publisher, iso.config, logger, source, 1000)).claimed === 0) break;
  return out;
}

/** The messages into the sink, as the consumer hands them over. */
async function store(source: TableSource, messages: EncodedMessage[]) {
  const sink = sinks.get(source.name) as TableSink<number>;
  // Raw values, as the consumer hands them over: the sink reads them by shape where it can.
  const inputs: SinkInput<number>[] = messages.map((m) => {
    const d = decodeMessage(m.value);
    if (!d.ok) throw new Error(d.reason);
    return { value: m.value, topic: source.spec.topic, partition: m.partition ?? 0, offset: String(offset++), ref: offset };
  });
  return sink.write(inputs);
}

const sourceOf = (name: string) => sources.find((s) => s.name === name) as TableSource;

/** Per row, per column: PostgreSQL's canonical text beside the engine's, from the view `<table>_current`. */
async function valuesBothSides(spec: TableSpec): Promise<{ pg: string[][]; ch: string[][] }> {
  const types = new Map(engine.rows<{ name: string; type: string }>(`SELECT name, type FROM system.columns WHERE database = '${DB}' AND table = '${spec.clickhouseTable}'`).map((r) => [r.name, r.type]));
  const pairs = spec.columns.map((c) => canonicalPair(c, types.get(c.name) as string, 't', types.has(`${c.name}__is_null`) ? `${c.name}__is_null` : null));
  if (pairs.some((p) => p === null)) throw new Error(`no canonical pair for a column of ${spec.table}`);
  const order = spec.keyColumns.map((k) => `t.${pgIdent(k)}`).join(', ');
  const pgRows = await withPg(iso.config, async (c) => {
    for (const [k, v] of Object.entries(PG_TEXT_SETTINGS)) await c.query(`SET ${k} = '${v}'`);
    return (await c.query({ text: `SELECT ${pairs.map((p) => p?.pg).join(', ')} FROM ${spec.qualified} t ORDER BY ${order}`, rowMode: 'array' })).rows as string[][];
  });
  // The view has the table's columns (and null flags): the same expressions apply to it.
  const view = `\`${DB}\`.\`${viewName(spec.clickhouseTable)}\``;
  const chOrder = spec.keyColumns.map((k) => `\`${k}\``).join(', ');
  const chRows = engine.rows<Record<string, string>>(`SELECT ${pairs.map((p, i) => `${p?.ch} AS c${i}`).join(', ')} FROM ${view} ORDER BY ${chOrder}`).map((r) => pairs.map((_, i) => r[`c${i}`] as string));
  return { pg: pgRows, ch: chRows };
}

/** Every cell whose canonical text differs between the two sides, as `key column: pg ≠ ch` (none: equal). */
async function differences(spec: TableSpec): Promise<string[]> {
  const { pg: p, ch } = await valuesBothSides(spec);
  const out: string[] = [];
  if (p.length !== ch.length) out.push(`${p.length} rows in PostgreSQL, ${ch.length} in ClickHouse`);
  for (const [i, row] of p.entries()) {
    for (const [j, v] of row.entries()) if (ch[i]?.[j] !== v) out.push(`row ${i + 1} ${spec.columns[j]?.name}: ${v} ≠ ${ch[i]?.[j]}`);
  }
  return out;
}

/** verify's bucket figures for a table, PostgreSQL's against the engine's. */
async function verifySums(spec: TableSpec): Promise<{ pg: Map<string, unknown>; ch: Map<string, unknown> }> {
  const types = new Map(engine.rows<{ name: string; type: string }>(`SELECT name, type FROM system.columns WHERE database = '${DB}' AND table = '${spec.clickhouseTable}'`).map((r) => [r.name, r.type]));
  const plan = verifyPlan(spec, DB, types);
  const pq = pgVerifyQueries(spec, plan);
  const cq = chVerifyQueries(spec, plan);
  const pgRows = await withPg(iso.config, async (c) => {
    for (const [k, v] of Object.entries(PG_TEXT_SETTINGS)) await c.query(`SET ${k} = '${v}'`);
    return plan.integerKey ? (await c.query(pq.rangeSums, ['-1000000000', '1000000000', 100])).rows : (await c.query(pq.hashSums)).rows;
  });
  const chRows = engine.rows<Record<string, unknown>>(plan.integerKey ? cq.rangeSums(100, -1_000_000_000n, 1_000_000_000n) : cq.hashSums).map((r) => unprefixed<{ b: string; n: string; s: string }>(r));
  return { pg: bucketSums(pgRows), ch: bucketSums(chRows) };
}

beforeAll(async () => {
  engine = openEngine();
  console.log(`[clickhouse-current] embedded ClickHouse ${engine.version} (npm chdb)`);
  version = parseServerVersion(engine.version);
  iso = await isolate({ STREAMER_TABLES: 'every_type, current_edges, user_login, "Sales"."Order Lines"', KAFKA_TOPIC: '', KAFKA_DLQ_TOPIC: '', CLICKHOUSE_DATABASE: DB });
  await withPg(iso.config, (c) => c.query(`${EVERY_TYPE_DDL}; ${EVERY_TYPE_ROWS}; ${CURRENT_DDL}`));
  const pgm = await migratePostgres(iso.config, logger); // creates the seed's user_login
  await withPg(iso.config, (c) =>
    c.query(`INSERT INTO user_login (username, event_type, event_time) SELECT 'u' || g, 'login', '2024-01-01'::timestamp + g * interval '1.000001 second' FROM generate_series(1, 10) g`),
  );
  pool = createPool(iso.config, logger, 'streamer-conformance');
  sources = await loadSources(pool, iso.config);
  // The migrations and the tables, as `streamer migrate` makes them for this server.
  const m = await migrateClickHouse(iso.config, logger, pgm.specs, { client: engine.client });
  expect(m.tables.map((t) => t.action)).toEqual(['created', 'created', 'created', 'created']);
  for (const s of sources) sinks.set(s.name, await TableSink.open<number>(engine.client, DB, s.spec.clickhouseTable, capabilities(version), logger));
});

afterAll(async () => {
  await pool?.end();
  await iso?.cleanup();
  engine?.close();
});

describe(`a current ClickHouse (embedded)`, () => {
  it('is a 25.x or later engine', () => {
    expect(version.major).toBeGreaterThanOrEqual(25);
  });

  it('migrate made every table with the types and engine of README "Types" for this version', () => {
    const caps = capabilities(version);
    for (const s of sources) {
      const cols = engine.rows<{ name: string; type: string }>(`SELECT name, type FROM system.columns WHERE database = '${DB}' AND table = '${s.spec.clickhouseTable}'`);
      expect(cols, s.name).toEqual(chColumns(s.spec, caps).map((c) => ({ name: c.name, type: c.type })));
      const [t] = engine.rows<{ e: string; k: string }>(`SELECT engine_full AS e, sorting_key AS k FROM system.tables WHERE database = '${DB}' AND name = '${s.spec.clickhouseTable}'`);
      expect(t?.e).toMatch(/^ReplacingMergeTree\(_version, _deleted\)/);
      expect(t?.e).toContain('non_replicated_deduplication_window = 1000');
      expect(t?.k.replace(/[()`\s]/g, '')).toBe(s.spec.keyColumns.join(',').replace(/\s/g, ''));
    }
    const types = Object.fromEntries(engine.rows<{ name: string; type: string }>(`SELECT name, type FROM system.columns WHERE database = '${DB}' AND table = 'every_type'`).map((r) => [r.name, r.type]));
    expect(types).toMatchObject({
      c_dec: 'Nullable(Decimal(12, 2))',
      c_num: 'Nullable(String)',
      c_real: 'Nullable(Float32)',
      c_double: 'Nullable(Float64)',
      c_bool: 'Nullable(Bool)',
      c_date: 'Nullable(Date32)',
      c_ts: "Nullable(DateTime64(6, 'UTC'))",
      c_tstz: "Nullable(DateTime64(6, 'UTC'))",
      c_mood: 'LowCardinality(Nullable(String))',
      c_ints: 'Array(Nullable(Int32))',
    });
  });

  it("stores the producer's messages of every type with the sink's bytes, value for value", async () => {
    for (const name of ['public.every_type', 'public.current_edges', 'public.user_login', 'Sales.Order Lines']) {
      const source = sourceOf(name);
      const r = await store(source, await produce(source));
      // Every value fits its column on this version: nothing is refused.
      expect([name, r.rejected]).toEqual([name, []]);
      expect(await differences(source.spec), name).toEqual([]);
    }
    // What "value for value" means for the types 18.16 could not hold exactly:
    expect(engine.rows(`SELECT toString(c_double) AS d, toString(c_real) AS r, toString(c_date) AS dt, toString(c_ts) AS ts, toString(c_wide) AS w FROM ${DB}.current_edges_current ORDER BY id`)).toEqual([
      { d: '5e-324', r: '1e-45', dt: '1900-01-01', ts: '1900-01-01 00:00:00.000001', w: '-1234567890123456789012345678901234567890.0123456789' },
      { d: '0.30000000000000004', r: '-0', dt: '2299-12-31', ts: '2299-12-31 23:59:59.999999', w: '0.0000000001' },
      { d: '-inf', r: 'nan', dt: '1969-12-31', ts: '1969-12-31 23:59:59.500000', w: '0' },
    ]);
  });

  it('verify and status queries agree with PostgreSQL on every table', async () => {
    for (const s of sources) {
      const { pg: p, ch } = await verifySums(s.spec);
      expect([s.name, ch]).toEqual([s.name, p]);
    }
    const [rows] = engine.rows<{ n: string }>(CH_STATUS.rows(DB, 'user_login'));
    expect(rows?.n).toBe('10');
    const [dead] = engine.rows<{ n: string }>(CH_STATUS.deadLetters(DB, sourceOf('public.user_login').spec.topic));
    expect(dead?.n).toBe('0');
  });

  it('a redelivery stores nothing twice; updates, deletes and a key change leave the newest version; FINAL hides deletes by itself', async () => {
    const source = sourceOf('public.user_login');
    const first = await produce(source); // nothing pending: already published
    expect(first).toEqual([]);
    await withPg(iso.config, (c) => c.query(`UPDATE user_login SET event_type = 'logout' WHERE id = 1; DELETE FROM user_login WHERE id = 2; UPDATE user_login SET id = 100 WHERE id = 3`));
    const changes = await produce(source);
    const r = await store(source, changes);
    expect([r.inserted, r.rejected]).toEqual([4, []]); // 1 updated, 2 deleted, 3 deleted, 100 new
    const again = await store(source, changes); // redelivered
    expect([again.inserted, again.duplicates]).toEqual([0, 4]);
    expect(await differences(source.spec)).toEqual([]);
    const stored = chVerifyQueries(source.spec, verifyPlan(source.spec, DB, new Map(chColumns(source.spec, capabilities(version)).map((c) => [c.name, c.type]))));
    const [dup] = engine.rows<Record<string, unknown>>(stored.stored).map((x) => unprefixed<{ n: string; u: string }>(x));
    expect(dup?.n).toBe(dup?.u); // no (key, version) twice
    // is_deleted: FINAL alone hides the deleted keys, before and after the merge.
    const live = () => engine.rows<{ id: number }>(`SELECT id FROM ${DB}.user_login FINAL ORDER BY id`).map((x) => x.id);
    expect(live()).toEqual([1, 4, 5, 6, 7, 8, 9, 10, 100]);
    engine.run(`OPTIMIZE TABLE ${DB}.user_login FINAL`);
    expect(live()).toEqual([1, 4, 5, 6, 7, 8, 9, 10, 100]);
    expect(engine.rows(`SELECT event_type FROM ${DB}.user_login FINAL WHERE id = 1`)).toEqual([{ event_type: 'logout' }]);
    expect(engine.rows(`SELECT toString(count()) AS n FROM ${DB}.user_login_current`)).toEqual([{ n: '9' }]);
  });

  it('TRUNCATE: the marker on each partition deletes every older version; rows inserted after it stay', async () => {
    const source = sourceOf('Sales.Order Lines');
    await withPg(iso.config, (c) => c.query(`TRUNCATE "Sales"."Order Lines"; INSERT INTO "Sales"."Order Lines" VALUES (3, 1, 'after')`));
    const messages = await produce(source);
    expect(messages.filter((m) => m.key === null).map((m) => m.partition)).toEqual([0, 1]);
    await store(source, messages);
    expect(await differences(source.spec)).toEqual([]);
    expect((await valuesBothSides(source.spec)).pg).toHaveLength(1);
    const { pg: ps, ch: cs } = await verifySums(source.spec);
    expect(cs).toEqual(ps);
  });
});
