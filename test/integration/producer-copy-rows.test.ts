// The backlog path reads claimed rows with COPY … TO STDOUT and writes their messages from the
// bytes (src/tables/copy-rows.ts); the first batch of a drain reads them as rows. On real
// PostgreSQL, for every type of the mapping and values that COPY escapes (control characters, a
// backslash, \N, multi-byte UTF-8) or that are not plain (BC, infinity, a five-digit year), both
// paths give the same message bytes and key, row for row.
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { copyOut } from '../../src/capture/copy-out.js';
import { createPool } from '../../src/capture/db.js';
import { loadSources, type TableSource } from '../../src/capture/producer.js';
import { PRODUCER_BEGIN, producerPlans } from '../../src/capture/plans.js';
import { tableConfigs } from '../../src/config/tables.js';
import { buildSpec, readCatalog } from '../../src/tables/introspect.js';
import { createLogger } from '../../src/common/logger.js';
import { encodeFields } from '../../src/tables/codec.js';
import { ByteBuffer } from '../../src/common/bytes.js';
import { CopyRows, writeUpsert } from '../../src/tables/copy-rows.js';
import { EVERY_TYPE_DDL, EVERY_TYPE_ROWS } from '../support/every-type.js';
import { isolate, type Isolated } from '../support/isolation.js';
import { withPg } from '../support/pg.js';
import { runCli } from '../support/cli.js';

let iso: Isolated;
let source: TableSource;
beforeAll(async () => {
  const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'streamer-copy-')), 'tables.json');
  writeFileSync(file, JSON.stringify({ tables: { 'public.every_type': { flagColumn: 'sent' } } }));
  iso = await isolate({ STREAMER_TABLES: 'public.every_type', STREAMER_CONFIG: file, KAFKA_TOPIC: '' });
  await withPg(iso.config, (c) => c.query(`${EVERY_TYPE_DDL}; ALTER TABLE every_type ADD COLUMN sent boolean DEFAULT false`));
  const m = await runCli(['migrate'], iso.env);
  expect(m.code, m.stderr).toBe(0);
  await withPg(iso.config, (c) =>
    c.query(`${EVERY_TYPE_ROWS};
      INSERT INTO every_type (id, c_text, c_ts, c_tstz, c_texts, c_date) VALUES
        (10, E'\\x01 \\x08 \\x0b \\x0c \\x1f \\x7f \\u2028 "q" \\\\ end', '0044-03-15 12:00:00 BC', 'infinity', ARRAY[E'\\x0b', E'\\\\', '"', NULL], '0044-03-15 BC'),
        (11, E'\\\\N', '10000-01-01 00:00:00', '-infinity', '{}', 'infinity'),
        (12, 'plain text', '2024-02-29 23:59:59.1', '2024-02-29 23:59:59.123456+00', ARRAY['a b', 'c'], '2024-02-29')`),
  );
  [source] = (await withPg(iso.config, (c) => loadSources(c, iso.config))) as [TableSource];
});
afterAll(async () => {
  await iso?.cleanup();
});

it('every type, both paths: the same message bytes and key for each claimed row; is_last on the highest key', async () => {
  const pool = createPool(iso.config, createLogger({ level: 'silent' }), 'streamer-copy-test'); // the producer's session settings
  const client = await pool.connect();
  try {
    // The row path (a drain's first batch), rolled back: the rows stay pending.
    await client.query(PRODUCER_BEGIN);
    const { rows } = await client.query<Record<string, unknown>>(source.plans.claimRows as string, [100, source.name]);
    await client.query('ROLLBACK');
    const byRows = new Map(
      rows.map((row) => {
        const fragments = source.encoders.map((encode, i) => {
          const v = row[source.fields[i] as string];
          return v === null ? 'null' : encode(v);
        });
        return [row.key as string, encodeFields(source.prefixes, fragments, 'upsert', '7').toString()];
      }),
    );
    // The backlog path on the same rows.
    await client.query(PRODUCER_BEGIN);
    const copied = new CopyRows(source.copyFields);
    expect(await copyOut(client, source.plans.copyClaim!(100, source.name), (bytes, start, end) => copied.add(bytes, start, end))).toBe(12);
    await client.query('ROLLBACK');
    const out = new ByteBuffer(0);
    const byCopy = new Map<string, string>();
    const last: string[] = [];
    for (let r = 0; r < copied.count; r++) {
      const from = writeUpsert(out, copied, r, source.writers, '7');
      const key = copied.text(r, source.spec.columns.length) as string;
      byCopy.set(key, out.buf.toString('utf8', from, out.length));
      if (copied.isTrue(r, source.copyFields - 1)) last.push(key);
    }
    expect(byRows.size).toBe(12);
    expect([...byCopy.keys()].sort()).toEqual([...byRows.keys()].sort());
    for (const [key, want] of byRows) expect(byCopy.get(key), `row ${key}`).toEqual(want);
    expect(last).toEqual(['12']); // the highest key
    // What the odd rows became (the row path's rules, README "Types"): not plain, so encoded from their text.
    expect(JSON.parse(byCopy.get('10')!)).toMatchObject({ c_text: '\u0001 \b \u000b \f \u001f \u007f \u2028 "q" \\ end', c_ts: '0044-03-15 12:00:00 BC', c_tstz: 'infinity', c_texts: ['\u000b', '\\', '"', null] });
    expect(JSON.parse(byCopy.get('11')!)).toMatchObject({ c_text: '\\N', c_ts: '10000-01-01 00:00:00', c_tstz: '-infinity', c_texts: [], c_date: 'infinity' });
    expect(JSON.parse(byCopy.get('12')!)).toMatchObject({ c_text: 'plain text', c_ts: '2024-02-29 23:59:59.100000', c_tstz: '2024-02-29 23:59:59.123456' });
  } finally {
    client.release();
    await pool.end();
  }
});

it('a COPY that fails (a table gone) rejects with PostgreSQL’s error, and the session goes on', async () => {
  const pool = createPool(iso.config, createLogger({ level: 'silent' }), 'streamer-copy-test');
  const client = await pool.connect();
  try {
    const rows: Buffer[] = [];
    await expect(copyOut(client, 'COPY (SELECT * FROM no_such_table) TO STDOUT', (bytes, start, end) => rows.push(Buffer.from(bytes.subarray(start, end))))).rejects.toMatchObject({ code: '42P01' });
    // A row callback that throws: the error comes back once PostgreSQL is done, and the session is usable.
    await expect(copyOut(client, 'COPY (SELECT g FROM generate_series(1, 3) g) TO STDOUT', () => { throw new Error('boom'); })).rejects.toThrow('boom');
    expect(await copyOut(client, 'COPY (SELECT g FROM generate_series(1, 3) g) TO STDOUT', (bytes, start, end) => rows.push(Buffer.from(bytes.subarray(start, end))))).toBe(3);
    expect(rows.map((r) => r.toString())).toEqual(['1\n', '2\n', '3\n']);
    expect((await client.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
  } finally {
    client.release();
    await pool.end();
  }
});

it('a COPY takes part in node-postgres’s query_timeout: it ends its read timer when done, and fails when it fires', async () => {
  const pool = createPool(iso.config, createLogger({ level: 'silent' }), 'streamer-copy-test'); // DATABASE_QUERY_TIMEOUT_MS as query_timeout
  const client = await pool.connect();
  try {
    // A timer left running held the COPY, its rows and the whole batch until it fired: the
    // sweep's memory grew by ~2.5 MB a batch (bench/README.md "2026-11-27 (COPY claims)").
    // Each COPY that left its timer running added one (for DATABASE_QUERY_TIMEOUT_MS). The count
    // is the whole process's: another timer may start or end meanwhile (a test once saw one end),
    // so 20 COPYs must add fewer than 10.
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = timers();
    for (let i = 0; i < 20; i++) expect(await copyOut(client, 'COPY (SELECT 1) TO STDOUT', () => {})).toBe(1);
    expect(timers() - before).toBeLessThan(10);
  } finally {
    client.release();
    await pool.end();
  }
  const slow = createPool(iso.config, createLogger({ level: 'silent' }), 'streamer-copy-test', { queryTimeoutMs: 200 });
  try {
    const c = await slow.connect();
    await expect(copyOut(c, 'COPY (SELECT pg_sleep(2)) TO STDOUT', () => {})).rejects.toThrow(/timeout/i);
    c.release(true);
  } finally {
    await slow.end();
  }
});

it('the change-log path reads rows by keys that need escaping in an array literal (quote, backslash, comma, braces, apostrophe, Unicode)', async () => {
  const keys = ['plain', 'a "quoted" key', 'back\\slash', 'comma, and {braces}', "it's", 'ünï ✓', ' spaced ', 'NULL'];
  await withPg(iso.config, async (c) => {
    await c.query('CREATE TABLE text_keys (k text PRIMARY KEY, v int)');
    await c.query('INSERT INTO text_keys SELECT k, ord FROM unnest($1::text[]) WITH ORDINALITY AS u(k, ord)', [keys]);
  });
  const config = tableConfigs({ STREAMER_TABLES: 'public.text_keys' })[0]!;
  const spec = buildSpec(config, await withPg(iso.config, (c) => readCatalog(c, 'public', 'text_keys')));
  const plans = producerPlans(spec);
  const pool = createPool(iso.config, createLogger({ level: 'silent' }), 'streamer-copy-test');
  const client = await pool.connect();
  try {
    const rows = new CopyRows(spec.columns.length + 1);
    // Every key asked for, and one that is not there.
    expect(await copyOut(client, plans.copyReadRows([...keys, 'absent'].map((k) => [k])), (bytes, start, end) => rows.add(bytes, start, end))).toBe(keys.length);
    const found = Array.from({ length: rows.count }, (_, r) => [rows.text(r, spec.columns.length), rows.text(r, 0), rows.text(r, 1)]);
    expect(found.sort()).toEqual(keys.map((k, i) => [k, k, String(i + 1)]).sort());
  } finally {
    client.release();
    await pool.end();
  }
});
