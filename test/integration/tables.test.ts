// Issue 11 — the tables a user names: two tables in one process (a composite key; a quoted,
// mixed-case table with a reserved word and a space among its column names), inserts, updates
// and deletes on both, status and verify per table; ADD COLUMN and DROP COLUMN while running; a
// refused type and a table without a key, each with its one line and its fix.
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StatusReport } from '../../src/ops/status.js';
import type { VerifyReport } from '../../src/ops/verify.js';
import { chQuery } from '../support/clickhouse.js';
import { runCli } from '../support/cli.js';
import { isolate, type Isolated } from '../support/isolation.js';
import { withPg } from '../support/pg.js';
import { converged, startPipeline, type Pipeline } from '../support/pipeline.js';
import { waitFor } from '../support/wait.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'streamer-tables-'));

describe('two tables in one process', () => {
  let iso: Isolated;
  let pipeline: Pipeline | null = null;
  beforeAll(async () => {
    // Topics of their own (the default names would be shared with earlier runs of this test).
    const run = Math.random().toString(36).slice(2, 8);
    const config = path.join(dir, 'two-tables.json');
    writeFileSync(config, JSON.stringify({ tables: { 'shop.order_lines': { topic: `order_lines_${run}` }, '"Sales"."UserEvents"': { topic: `UserEvents_${run}` } } }));
    iso = await isolate({ STREAMER_TABLES: 'shop.order_lines, "Sales"."UserEvents"', STREAMER_CONFIG: config, SWEEP_INTERVAL_MS: '3600000', KAFKA_TOPIC: '' });
    await withPg(iso.config, (c) =>
      c.query(`
        CREATE SCHEMA shop;
        CREATE TABLE shop.order_lines (order_id bigint, line int, sku text NOT NULL, qty int NOT NULL, price numeric(12,2), PRIMARY KEY (order_id, line));
        CREATE SCHEMA "Sales";
        CREATE TABLE "Sales"."UserEvents" ("Id" uuid PRIMARY KEY, "Select" text, "Event Time" timestamptz, "Tags" text[]);
      `),
    );
  });
  afterAll(async () => {
    await pipeline?.stop();
    await iso?.cleanup();
  });

  const sql = (text: string) => withPg(iso.config, (c) => c.query(text));
  const db = () => iso.config.clickhouseDatabase;
  const pgLines = async () => (await sql(`SELECT order_id::text, line, sku, qty, price::text FROM shop.order_lines ORDER BY 1, 2`)).rows;
  const chLines = () => chQuery(iso.config, 'SELECT toString(order_id) AS order_id, line, sku, qty, toString(price) AS price FROM order_lines_current ORDER BY order_id, line');
  const pgEvents = async () =>
    (await sql(`SELECT "Id"::text AS id, "Select" AS sel, to_char("Event Time" AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') AS t, "Tags" AS tags FROM "Sales"."UserEvents" ORDER BY 1`)).rows;
  const chEvents = () => chQuery(iso.config, 'SELECT toString(`Id`) AS id, `Select` AS sel, toString(`Event Time`) AS t, `Tags` AS tags FROM `UserEvents_current` ORDER BY id');

  it('migrate installs both captures and creates both ClickHouse tables', async () => {
    const m = await runCli(['migrate'], iso.env);
    expect(m.code, m.stderr).toBe(0);
    expect(m.stdout.split('\n').slice(2)).toEqual([
      `shop.order_lines: capture installed; ClickHouse ${db()}.order_lines created`,
      `Sales.UserEvents: capture installed; ClickHouse ${db()}.UserEvents created`,
      '',
    ]);
    expect(await chQuery(iso.config, `SELECT name, toString(is_in_sorting_key) AS k FROM system.columns WHERE database = '${db()}' AND table = 'order_lines' AND is_in_sorting_key`)).toEqual([
      { name: 'order_id', k: '1' },
      { name: 'line', k: '1' },
    ]);
  });

  it('inserts, updates and deletes of both tables arrive; verify checks each', async () => {
    pipeline = await startPipeline(iso.config);
    await sql(`INSERT INTO shop.order_lines VALUES (1, 1, 'apple', 3, 1.50), (1, 2, 'pear', 1, 0.99), (2, 1, 'fig', 12, 10.00)`);
    await sql(`INSERT INTO "Sales"."UserEvents" VALUES
      ('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'login', '2024-03-10 02:30:00+01', '{a,"b c"}'),
      ('b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12', NULL, NULL, NULL)`);
    await converged(iso.config);
    await sql(`UPDATE shop.order_lines SET qty = 4 WHERE order_id = 1 AND line = 1; DELETE FROM shop.order_lines WHERE order_id = 1 AND line = 2`);
    await sql(`UPDATE "Sales"."UserEvents" SET "Select" = 'logout', "Tags" = '{}' WHERE "Id" = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'`);
    await sql(`DELETE FROM "Sales"."UserEvents" WHERE "Select" IS NULL`);
    const report = await converged(iso.config);
    expect(report.tables.map((t) => [t.table, t.postgresRows, t.ok])).toEqual([
      ['shop.order_lines', 2, true],
      ['Sales.UserEvents', 1, true],
    ]);
    expect(await chLines()).toEqual(await pgLines());
    expect(await chLines()).toEqual([
      { order_id: '1', line: 1, sku: 'apple', qty: 4, price: '1.50' },
      { order_id: '2', line: 1, sku: 'fig', qty: 12, price: '10.00' },
    ]);
    expect(await chEvents()).toEqual([{ id: 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', sel: 'logout', t: '2024-03-10 01:30:00', tags: [] }]);
    expect(await chEvents()).toEqual(await pgEvents());
  });

  it('status lists each table with its topic; verify --table narrows to one', async () => {
    const s = JSON.parse((await runCli(['status', '--json'], iso.env)).stdout) as StatusReport;
    expect(s.ok).toBe(true);
    expect(s.tables.map((t) => [t.table, t.kafka.topic.replace(/_[a-z0-9]+$/, ''), t.postgres.total, t.postgres.pending])).toEqual([
      ['shop.order_lines', 'order_lines', 2, 0],
      ['Sales.UserEvents', 'UserEvents', 1, 0],
    ]);
    const v = await runCli(['verify', '--json', '--table', '"Sales"."UserEvents"'], iso.env);
    expect(v.code, v.stderr).toBe(0);
    expect((JSON.parse(v.stdout) as VerifyReport).tables.map((t) => t.table)).toEqual(['Sales.UserEvents']);
    const bad = await runCli(['verify', '--table', 'sales.userevents'], iso.env);
    expect([bad.code, bad.stderr]).toEqual([1, 'streamer: verify --table sales.userevents: not one of STREAMER_TABLES (shop.order_lines, Sales.UserEvents)\n']);
  });

  it('ADD COLUMN while running: nothing wrong is written; status and verify say to migrate; after migrate the column arrives for every row', async () => {
    await sql(`ALTER TABLE shop.order_lines ADD COLUMN note text DEFAULT 'none'`);
    await sql(`UPDATE shop.order_lines SET note = 'gift', qty = 5 WHERE order_id = 2`);
    const why = /^shop\.order_lines changed since "streamer migrate" installed its capture \(column note text added\): its changes wait in PostgreSQL — run "streamer migrate"$/;
    const v = JSON.parse((await runCli(['verify', '--json'], iso.env)).stdout) as VerifyReport;
    expect(v.ok).toBe(false);
    expect(v.tables[0]?.shapeChange).toMatch(why);
    expect(v.tables[1]?.ok).toBe(true);
    const s = JSON.parse((await runCli(['status', '--json'], iso.env)).stdout) as StatusReport;
    expect(s.tables[0]?.postgres.note).toMatch(/^shop\.order_lines changed since "streamer migrate" \(column note text added\)/);

    const m = await runCli(['migrate'], iso.env);
    expect(m.code, m.stderr).toBe(0);
    expect(m.stdout).toContain(`shop.order_lines: capture updated; columns added: note; 2 rows queued to be sent (backfill); ClickHouse ${db()}.order_lines columns added (note)`);
    await converged(iso.config);
    expect(await chQuery(iso.config, 'SELECT toString(order_id) AS o, qty, note FROM order_lines_current ORDER BY order_id, line')).toEqual([
      { o: '1', qty: 4, note: 'none' },
      { o: '2', qty: 5, note: 'gift' },
    ]);
  });

  it('DROP COLUMN while running: that table pauses with one message, the other goes on; migrate names the ClickHouse column to decide on', async () => {
    await sql(`ALTER TABLE shop.order_lines DROP COLUMN qty`);
    await sql(`UPDATE shop.order_lines SET sku = 'banana' WHERE order_id = 1`);
    await sql(`INSERT INTO "Sales"."UserEvents" VALUES ('c0eebc99-9c0b-4ef8-bb6d-6bb9bd380a13', 'still flowing', NULL, '{}')`);
    await waitFor('the other table to go on', async () => ((await chEvents()).some((e) => e.sel === 'still flowing') ? true : undefined));
    expect((await chLines()).map((l) => l.sku)).toEqual(['apple', 'fig']); // nothing written with the old shape
    const m = await runCli(['migrate'], iso.env);
    expect(m.code).toBe(1);
    expect(m.stderr).toBe(
      `streamer: ClickHouse tables differ from their PostgreSQL tables in ways only you can decide — ${db()}.order_lines (from shop.order_lines): column qty is in ClickHouse but no longer replicated (dropped or renamed in PostgreSQL, or excluded). Nothing was dropped: move or drop the ClickHouse table (or column) yourself, then run "streamer migrate" again\n`,
    );
  });
});

describe('tables streamer refuses, each with one line and its fix', () => {
  let iso: Isolated;
  beforeAll(async () => {
    iso = await isolate();
    await withPg(iso.config, (c) =>
      c.query(`CREATE TABLE places (id int PRIMARY KEY, name text, "where" point);
               CREATE TABLE events_log (at timestamptz NOT NULL, msg text NOT NULL, level int);`),
    );
  });
  afterAll(async () => {
    await iso?.cleanup();
  });

  const file = (name: string, content: unknown) => {
    const p = path.join(dir, name);
    writeFileSync(p, JSON.stringify(content));
    return p;
  };

  it('a column of a type it cannot carry exactly; migrate works once it is excluded', async () => {
    const env = { ...iso.env, STREAMER_TABLES: 'places', KAFKA_TOPIC: '' };
    const r = await runCli(['migrate'], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^streamer: public\.places\.where has type point, which streamer cannot carry exactly \(it carries .*\) — exclude the column in the config file \(tables\["public\.places"\]\.exclude\), or change its type\n$/);
    const ok = await runCli(['migrate'], { ...env, STREAMER_CONFIG: file('places.json', { tables: { places: { exclude: ['where'] } } }) });
    expect(ok.code, ok.stderr).toBe(0);
    expect(await chQuery(iso.config, `SELECT name FROM system.columns WHERE database = '${iso.config.clickhouseDatabase}' AND table = 'places' AND NOT startsWith(name, '_')`)).toEqual([{ name: 'id' }, { name: 'name' }]);
  });

  it('a table without a primary key; migrate works with the key named in the config file', async () => {
    const env = { ...iso.env, STREAMER_TABLES: 'events_log', KAFKA_TOPIC: '' };
    const r = await runCli(['migrate'], env);
    expect([r.code, r.stderr]).toEqual([
      1,
      'streamer: public.events_log has no primary key: streamer needs one to replicate updates and deletes — add one, or name the key columns in the config file (tables["public.events_log"].key)\n',
    ]);
    const ok = await runCli(['migrate'], { ...env, STREAMER_CONFIG: file('log.json', { tables: { events_log: { key: ['at', 'msg'] } } }) });
    expect(ok.code, ok.stderr).toBe(0);
  });
});

describe('column names that collide with the SQL streamer writes', () => {
  let iso: Isolated;
  let pipeline: Pipeline | null = null;
  beforeAll(async () => {
    iso = await isolate({ STREAMER_TABLES: 'awkward', SWEEP_INTERVAL_MS: '3600000' });
    // The key is (version, op) — the names of the change log's own columns once — and n, o, t, c
    // are the aliases of the triggers' and the producer's SQL: each must stay unambiguous.
    await withPg(iso.config, (c) => c.query(`CREATE TABLE awkward (version int, op text, n int, o int, t text, c text, key text, PRIMARY KEY (version, op))`));
    const m = await runCli(['migrate'], iso.env);
    expect(m.code, m.stderr).toBe(0);
    pipeline = await startPipeline(iso.config);
  });
  afterAll(async () => {
    await pipeline?.stop();
    await iso?.cleanup();
  });

  it('inserts, updates, key changes and deletes arrive; verify OK', async () => {
    const sql = (text: string) => withPg(iso.config, (c) => c.query(text));
    await sql(`INSERT INTO awkward VALUES (1, 'a', 1, 2, 't', 'c', 'k'), (2, 'b', 3, 4, NULL, NULL, NULL), (3, 'c', 5, 6, 'x', 'y', 'z')`);
    await sql(`UPDATE awkward SET n = n + 10, o = 0 WHERE version = 1; UPDATE awkward SET op = 'b2' WHERE version = 2; DELETE FROM awkward WHERE version = 3`);
    await converged(iso.config);
    expect(await chQuery(iso.config, 'SELECT version, op, n, o, t, c, key FROM awkward_current ORDER BY version')).toEqual([
      { version: 1, op: 'a', n: 11, o: 0, t: 't', c: 'c', key: 'k' },
      { version: 2, op: 'b2', n: 3, o: 4, t: null, c: null, key: null },
    ]);
  });
});
