// Log mode (a table without a flag column, and every adopted table's backfill): the first batch of
// a drain claims the change log and reads the rows of its keys in two statements, as rows
// (settleChanges); the batches after it do both in ONE `COPY (…) TO STDOUT` whose rows PostgreSQL
// has grouped by key (plans.copyClaimChanges, producer.ts copiedChanges). On real PostgreSQL, for
// every type of the mapping, odd values, a two-column text key that needs quoting (one column called
// tid, as the claim calls the change-log rows' tuple ids), a key changed
// by UPDATE, deletes and a TRUNCATE, both paths must publish the same messages — key, partition
// and value bytes — and settle the same change-log rows. A message Kafka refuses on the COPY path
// is recorded failed and its change-log rows — which that claim deleted — are put back; a refused
// truncate marker's too.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createPool } from '../../src/capture/db.js';
import { countPending, drainBatch, drainTable, loadSources, type TableSource } from '../../src/capture/producer.js';
import type { Publisher } from '../../src/capture/publisher.js';
import { createLogger } from '../../src/common/logger.js';
import type { EncodedMessage } from '../../src/tables/codec.js';
import { captureObjects } from '../../src/tables/spec.js';
import { EVERY_TYPE_DDL, EVERY_TYPE_ROWS } from '../support/every-type.js';
import { isolate, type Isolated } from '../support/isolation.js';
import { withPg } from '../support/pg.js';
import { migrateAll } from '../support/streamer.js';
import { testLogger } from '../support/clickhouse.js';

const logger = createLogger({ level: 'silent' });
let iso: Isolated;
let sources: Map<string, TableSource>;
beforeAll(async () => {
  iso = await isolate({ STREAMER_TABLES: 'public.every_type,public.pairs', SWEEP_INTERVAL_MS: '3600000', KAFKA_TOPIC: '' });
  await withPg(iso.config, (c) => c.query(`${EVERY_TYPE_DDL}; CREATE TABLE pairs (tid text, b text, v int, PRIMARY KEY (tid, b))`));
  await migrateAll(iso.config, testLogger(iso.config));
  sources = new Map((await withPg(iso.config, (c) => loadSources(c, iso.config))).map((s) => [s.name, s]));
});
afterAll(async () => {
  await iso?.cleanup();
});

/**
 * A publisher that records what it is given — copies, as Kafka keeps the bytes: a batch's message
 * buffers are reused once it commits (Publisher#publish). `fail`: then throws (the batch rolls
 * back), `refuse`: refuses those keys (null: truncate markers).
 */
function recorder(opts: { fail?: boolean; refuse?: Array<string | null>; refuseWhen?: (m: EncodedMessage) => boolean } = {}) {
  const sent: EncodedMessage[] = [];
  const publisher: Publisher = {
    connect: async () => {},
    publish: async (_topic, messages) => {
      sent.push(...messages.map((m) => ({ ...m, value: Buffer.from(m.value) })));
      if (opts.fail) throw new Error('test: publish fails, the batch rolls back');
      return messages.filter((m) => opts.refuse?.includes(m.key) || opts.refuseWhen?.(m)).map((message) => ({ message, error: 'test: refused' }));
    },
    partitions: async () => [0, 1, 2],
    abandon: () => {},
    close: async () => {},
  };
  return { publisher, sent };
}

const text = (m: EncodedMessage) => JSON.stringify([m.key, m.partition ?? null, m.value.toString('utf8')]);

/** The messages of one batch of `source` by the first batch's path (lead) and by the COPY path, each rolled back. */
async function bothPaths(source: TableSource): Promise<{ lead: string[]; copy: string[] }> {
  const pool = createPool(iso.config, logger, 'streamer-copy-changes-test');
  try {
    const lead = recorder({ fail: true });
    await expect(drainBatch(pool, lead.publisher, iso.config, logger, source, 1000, { lead: true })).rejects.toThrow(/publish fails/);
    const copy = recorder({ fail: true });
    await expect(drainBatch(pool, copy.publisher, iso.config, logger, source, 1000, {})).rejects.toThrow(/publish fails/);
    return { lead: lead.sent.map(text).sort(), copy: copy.sent.map(text).sort() };
  } finally {
    await pool.end();
  }
}

const changeRows = (source: TableSource) => withPg(iso.config, async (c) => Number((await c.query(`SELECT count(*) AS n FROM ${captureObjects(source.spec).changes}`)).rows[0].n));

it('every type, odd values, updates, a changed key and deletes: both paths publish the same messages', async () => {
  const source = sources.get('public.every_type')!;
  await withPg(iso.config, (c) =>
    c.query(`${EVERY_TYPE_ROWS};
      INSERT INTO every_type (id, c_text, c_ts, c_tstz, c_texts, c_date) VALUES
        (10, E'\\x01 \\x08 \\x0b \\x0c \\x1f \\x7f \\u2028 "q" \\\\ end', '0044-03-15 12:00:00 BC', 'infinity', ARRAY[E'\\x0b', E'\\\\', '"', NULL], '0044-03-15 BC'),
        (11, E'\\\\N', '10000-01-01 00:00:00', '-infinity', '{}', 'infinity'),
        (12, 'plain text', '2024-02-29 23:59:59.1', '2024-02-29 23:59:59.123456+00', ARRAY['a b', 'c'], '2024-02-29');
      UPDATE every_type SET c_text = 'first' WHERE id = 12;
      UPDATE every_type SET c_text = 'second' WHERE id = 12;
      UPDATE every_type SET id = 13 WHERE id = 11;
      DELETE FROM every_type WHERE id = 10`),
  );
  const { lead, copy } = await bothPaths(source);
  expect(copy).toEqual(lead);
  // One message per key: rows 1–9 and 12, 13 (11's new key), and deletes of 10 and 11.
  const byKey = new Map(copy.map((m) => JSON.parse(m) as [string, null, string]).map(([k, , v]) => [k, JSON.parse(v) as Record<string, unknown>]));
  expect(byKey.size).toBe(copy.length);
  expect([...byKey.keys()].sort()).toEqual(['1', '10', '11', '12', '13', '2', '3', '4', '5', '6', '7', '8', '9']);
  expect(byKey.get('10')).toEqual({ id: 10, _op: 'delete', _version: expect.any(Number) });
  expect(byKey.get('11')).toEqual({ id: 11, _op: 'delete', _version: expect.any(Number) });
  expect(byKey.get('13')).toMatchObject({ id: 13, c_text: '\\N', c_tstz: '-infinity', _op: 'upsert' });
  expect(byKey.get('12')).toMatchObject({ c_text: 'second', c_tstz: '2024-02-29 23:59:59.123456', _op: 'upsert' });
  // Each key at the highest version claimed for it: 12's last update came after every insert,
  // and the delete of 10 after everything else.
  const version = (k: string) => byKey.get(k)?._version as number;
  for (const k of ['1', '2', '3', '4', '5', '6', '7', '8', '9']) expect(version('12')).toBeGreaterThan(version(k));
  for (const k of byKey.keys()) if (k !== '10') expect(version('10')).toBeGreaterThan(version(k));
  // Rolled back: every change-log row is still there.
  expect(await changeRows(source)).toBeGreaterThan(byKey.size);
});

it('a two-column text key that needs quoting, and a TRUNCATE between changes: both paths publish the same messages', async () => {
  const source = sources.get('public.pairs')!;
  await withPg(iso.config, (c) =>
    c.query(`INSERT INTO pairs VALUES ('x', 'gone', 0);
      TRUNCATE pairs;
      INSERT INTO pairs VALUES ('a "q"', 'b\\s', 1), ('comma, {b}', 'it''s', 2), ('ünï ✓', E'tab\\there', 3), ('dup', 'dup', 4);
      UPDATE pairs SET v = 40 WHERE tid = 'dup';
      DELETE FROM pairs WHERE tid = 'comma, {b}'`),
  );
  const { lead, copy } = await bothPaths(source);
  expect(copy).toEqual(lead);
  const parsed = copy.map((m) => JSON.parse(m) as [string | null, number | null, string]);
  // The truncate marker to each of the three partitions; then one message per key.
  expect(parsed.filter(([k]) => k === null).map(([, p]) => p).sort()).toEqual([0, 1, 2]);
  const byKey = new Map(parsed.filter(([k]) => k !== null).map(([k, , v]) => [k, JSON.parse(v)]));
  expect([...byKey.keys()].sort()).toEqual(['["a \\"q\\"", "b\\\\s"]', '["comma, {b}", "it\'s"]', '["dup", "dup"]', '["ünï ✓", "tab\\there"]'].sort());
  expect(byKey.get('["dup", "dup"]')).toMatchObject({ tid: 'dup', b: 'dup', v: 40, _op: 'upsert' });
  expect(byKey.get('["comma, {b}", "it\'s"]')).toEqual(expect.objectContaining({ tid: 'comma, {b}', b: "it's", _op: 'delete' }));
  expect(byKey.get('["ünï ✓", "tab\\there"]')).toMatchObject({ b: 'tab\there', v: 3 });
});

it('a drain of batches of 3 by the COPY path publishes every key once and settles every change; a refused message is recorded and its changes stay', async () => {
  const source = sources.get('public.pairs')!;
  await withPg(iso.config, (c) => c.query(`INSERT INTO pairs SELECT 'k' || g, 'x', g FROM generate_series(1, 20) g; UPDATE pairs SET v = v + 100 WHERE tid IN ('k3', 'k4', 'k15')`));
  const pending = await changeRows(source);
  const pool = createPool(iso.config, logger, 'streamer-copy-changes-test');
  try {
    const rec = recorder({ refuse: ['["k4", "x"]'] });
    const batches: number[] = [];
    await drainTable(pool, rec.publisher, { ...iso.config, producerBatchSize: 3 }, logger, source, { onBatch: (r) => batches.push(r.claimed) });
    // Every change-log row claimed once, in batches of at most 3 change-log rows — but k4's
    // update: once its insert was refused, its key is failed and its changes are not claimed.
    expect(batches.reduce((a, b) => a + b, 0)).toBe(pending - 1);
    expect(Math.max(...batches)).toBe(3);
    const last = new Map<string, Record<string, unknown>>();
    for (const m of rec.sent) if (m.key !== null) last.set(m.key, JSON.parse(m.value.toString()));
    // Every key of the table and of the earlier tests' changes, each with its row as it is now.
    const rows = await withPg(iso.config, async (c) => (await c.query<{ tid: string; b: string; v: number }>('SELECT tid, b, v FROM pairs')).rows);
    for (const r of rows) expect(last.get(JSON.stringify([r.tid, r.b]).replace(/","/g, '", "')), `${r.tid}/${r.b}`).toMatchObject({ tid: r.tid, b: r.b, v: r.v, _op: 'upsert' });
    expect(last.get('["k15", "x"]')).toMatchObject({ v: 115 });
    // The refused key: recorded failed, its two change-log rows kept (and no longer claimed); the rest deleted.
    const failed = await withPg(iso.config, async (c) => (await c.query('SELECT key, error FROM streamer_failed_rows WHERE table_name = $1', [source.name])).rows);
    expect(failed).toEqual([{ key: '["k4", "x"]', error: expect.stringContaining('test: refused') }]);
    expect(await changeRows(source)).toBe(2);
    expect(await countPending(pool, [source])).toBe(0);
  } finally {
    await pool.end();
  }
});

it('a truncate marker Kafka refuses on the COPY path: its change-log row is put back, the rest are settled; the next batch publishes it', async () => {
  const source = sources.get('public.pairs')!;
  await withPg(iso.config, (c) => c.query(`TRUNCATE pairs; INSERT INTO pairs VALUES ('t1', 'x', 1), ('t2', 'x', 2)`));
  const marker = await withPg(iso.config, async (c) => (await c.query(`SELECT _version::text AS v FROM ${captureObjects(source.spec).changes} WHERE _op = 'T'`)).rows);
  expect(marker).toHaveLength(1);
  const pool = createPool(iso.config, logger, 'streamer-copy-changes-test');
  try {
    const refusing = recorder({ refuse: [null] });
    expect(await drainBatch(pool, refusing.publisher, iso.config, logger, source, 1000, {})).toMatchObject({ claimed: 3, published: 2, failed: 0 });
    expect(refusing.sent.filter((m) => m.key === null).map((m) => m.partition).sort()).toEqual([0, 1, 2]);
    // Only the marker's row is left, as it was (its version, op T, no key).
    const left = await withPg(iso.config, async (c) => (await c.query(`SELECT _version::text AS v, _op::text AS op, tid, b FROM ${captureObjects(source.spec).changes}`)).rows);
    expect(left).toEqual([{ v: marker[0].v, op: 'T', tid: null, b: null }]);
    const next = recorder();
    expect(await drainBatch(pool, next.publisher, iso.config, logger, source, 1000, {})).toMatchObject({ claimed: 1, published: 3 });
    expect(next.sent.map((m) => [m.key, m.partition, m.value.toString()])).toEqual([0, 1, 2].map((p) => [null, p, `{"_op":"truncate","_version":${marker[0].v}}`]));
    expect(await changeRows(source)).toBe(0);
  } finally {
    await pool.end();
  }
});

it('the first batch of a pass: a truncate marker that one partition refused stays in the change log until every partition has it', async () => {
  const source = sources.get('public.pairs')!;
  const changes = captureObjects(source.spec).changes;
  await withPg(iso.config, (c) => c.query(`TRUNCATE pairs; INSERT INTO pairs VALUES ('u1', 'x', 1)`));
  const marker = await withPg(iso.config, async (c) => (await c.query(`SELECT _version::text AS v FROM ${changes} WHERE _op = 'T'`)).rows);
  const pool = createPool(iso.config, logger, 'streamer-copy-changes-test');
  try {
    // Partitions 0 and 2 take their copy, partition 1 refuses its own: the row must stay.
    const partial = recorder({ refuseWhen: (m) => m.key === null && m.partition === 1 });
    expect(await drainBatch(pool, partial.publisher, iso.config, logger, source, 1000, { lead: true })).toMatchObject({ claimed: 2, published: 3, failed: 0 });
    const left = await withPg(iso.config, async (c) => (await c.query(`SELECT _version::text AS v, _op::text AS op FROM ${changes}`)).rows);
    expect(left).toEqual([{ v: marker[0].v, op: 'T' }]);
    const next = recorder();
    expect(await drainBatch(pool, next.publisher, iso.config, logger, source, 1000, { lead: true })).toMatchObject({ claimed: 1, published: 3 });
    expect(next.sent.map((m) => m.partition)).toEqual([0, 1, 2]);
    expect(await changeRows(source)).toBe(0);
  } finally {
    await pool.end();
  }
});

it('a refused message of a key with several changes in one COPY batch: every one of its change-log rows is put back, as it was', async () => {
  const source = sources.get('public.pairs')!;
  const changes = captureObjects(source.spec).changes;
  await withPg(iso.config, (c) =>
    c.query(`DELETE FROM ${changes}; DELETE FROM streamer_failed_rows WHERE table_name = '${source.name}';
             INSERT INTO pairs VALUES ('m1', 'x', 1), ('m2', 'x', 2); UPDATE pairs SET v = v + 10 WHERE tid = 'm1'; UPDATE pairs SET v = v + 10 WHERE tid = 'm1'; DELETE FROM pairs WHERE tid = 'm2'`),
  );
  const before = async () => (await withPg(iso.config, async (c) => (await c.query(`SELECT _version::text AS v, _op::text AS op, tid, b FROM ${changes} ORDER BY _version`)).rows)) as Array<{ v: string; op: string; tid: string; b: string }>;
  const all = await before();
  expect(all.filter((r) => r.tid === 'm1')).toHaveLength(3);
  const pool = createPool(iso.config, logger, 'streamer-copy-changes-test');
  try {
    const refusing = recorder({ refuse: ['["m1", "x"]'] });
    expect(await drainBatch(pool, refusing.publisher, iso.config, logger, source, 1000, {})).toMatchObject({ claimed: 5, published: 1, failed: 1 });
    // One message per key: m1's upsert at its highest version (refused), m2's delete.
    const highest = (tid: string) => all.filter((r) => r.tid === tid).at(-1)!.v;
    expect(refusing.sent.map((m) => [m.key, m.value.toString()]).sort()).toEqual([
      ['["m1", "x"]', `{"tid":"m1","b":"x","v":21,"_op":"upsert","_version":${highest('m1')}}`],
      ['["m2", "x"]', `{"tid":"m2","b":"x","_op":"delete","_version":${highest('m2')}}`],
    ]);
    // m1's three change-log rows are back, each with its version and op; m2's are settled.
    expect(await before()).toEqual(all.filter((r) => r.tid === 'm1'));
  } finally {
    await pool.end();
  }
});
