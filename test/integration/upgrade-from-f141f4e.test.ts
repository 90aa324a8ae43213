// Issue 10 — a deployment of f141f4e upgrades in place: `streamer migrate` moves its ClickHouse
// table into the versioned shape keeping every row (the old table kept aside), reshapes
// streamer_failed_rows, replaces the old triggers; messages f141f4e left in Kafka are read as
// version 0; then updates and deletes flow. And a ClickHouse table dropped by an operator is
// filled again by the next migrate. The state of f141f4e is its own SQL (test/fixtures/f141f4e/).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { createClient } from '@clickhouse/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chQuery, produce, testLogger } from '../support/clickhouse.js';
import { ROOT, runCli } from '../support/cli.js';
import { isolate, type Isolated } from '../support/isolation.js';
import { withPg } from '../support/pg.js';
import { converged, startPipeline, type Pipeline } from '../support/pipeline.js';

const fixture = (name: string) => readFileSync(path.join(ROOT, 'test/fixtures/f141f4e', name), 'utf8');

let iso: Isolated;
let pipeline: Pipeline | null = null;
beforeAll(async () => {
  iso = await isolate({ SWEEP_INTERVAL_MS: '3600000' });
  const db = iso.config.clickhouseDatabase;
  // PostgreSQL as f141f4e left it: rows 1–4 sent, 5 pending, one row recorded failed.
  await withPg(iso.config, async (c) => {
    await c.query(fixture('postgres.sql'));
    await c.query(`INSERT INTO user_login (username, event_type, event_time, sent_to_kafka) VALUES
      ('john_doe', 'login', '2023-10-26 10:00:00', TRUE), ('jane_smith', 'register', '2023-10-26 10:15:00', TRUE),
      ('bob', 'login', '2023-10-26 11:00:00', TRUE), ('alice', 'purchase', '2023-10-26 11:15:00', TRUE),
      ('zoë', 'logout', '2023-10-26 12:00:00', FALSE)`);
    await c.query(`INSERT INTO streamer_failed_rows (id, error) VALUES (99, 'Kafka refused the message (2000123 bytes)')`);
  });
  // ClickHouse: rows 1–3 stored (2 twice, not merged yet); row 4 still in Kafka, as f141f4e wrote it.
  const ch = createClient({ url: iso.config.clickhouseUrl });
  try {
    for (const statement of fixture('clickhouse.sql').replaceAll('{{database}}', db).replace(/--.*$/gm, '').split(';').map((s) => s.trim()).filter(Boolean)) {
      await ch.command({ query: statement });
    }
    await ch.command({ query: `SYSTEM STOP MERGES ${db}.user_login` });
    await ch.command({
      query: `INSERT INTO ${db}.user_login VALUES (1, 'john_doe', 'login', '2023-10-26 10:00:00', 0, 0, now()), (2, 'jane_smith', 'register', '2023-10-26 10:15:00', 0, 1, now())`,
    });
    await ch.command({ query: `INSERT INTO ${db}.user_login VALUES (2, 'jane_smith', 'register', '2023-10-26 10:15:00', 0, 1, now()), (3, 'bob', 'login', '2023-10-26 11:00:00', 0, 2, now())` });
  } finally {
    await ch.close();
  }
  await produce(iso.config, [{ key: '4', value: Buffer.from('{"id":4,"username":"alice","event_type":"purchase","event_time":"2023-10-26 11:15:00.000000"}') }]);
});
afterAll(async () => {
  await pipeline?.stop();
  await iso?.cleanup();
});

const pgRows = async () => (await withPg(iso.config, (c) => c.query(`SELECT id, username, event_type, to_char(event_time, 'YYYY-MM-DD HH24:MI:SS') AS event_time FROM user_login ORDER BY id`))).rows;
const chRows = () => chQuery(iso.config, 'SELECT id, username, event_type, toString(event_time) AS event_time FROM user_login_current ORDER BY id');

describe('upgrade of a deployment of f141f4e', () => {
  it('migrate moves the ClickHouse table keeping every row once, and keeps the old one aside', async () => {
    const m = await runCli(['migrate'], iso.env);
    expect(m.code, m.stderr).toBe(0);
    const db = iso.config.clickhouseDatabase;
    expect(m.stdout).toBe(
      'PostgreSQL: applied versions_notify_failed_rows\n' +
        'ClickHouse: applied dead_letters\n' +
        `public.user_login: capture installed; ClickHouse ${db}.user_login moved (the old table is kept as ${db}.user_login__before_versions)\n`,
    );
    expect(await chQuery(iso.config, 'SELECT id, _version, _deleted FROM user_login ORDER BY id, _kafka_offset')).toEqual([
      { id: 1, _version: '0', _deleted: 0 },
      { id: 2, _version: '0', _deleted: 0 },
      { id: 3, _version: '0', _deleted: 0 },
    ]);
    expect(await chQuery(iso.config, 'SELECT toString(count()) AS n FROM user_login__before_versions')).toEqual([{ n: '4' }]);
    const failed = await withPg(iso.config, (c) => c.query('SELECT table_name, key, error FROM streamer_failed_rows'));
    expect(failed.rows).toEqual([{ table_name: 'public.user_login', key: '99', error: 'Kafka refused the message (2000123 bytes)' }]);
  });

  it("the pending row and f141f4e's message still in Kafka arrive; then updates and deletes flow", async () => {
    pipeline = await startPipeline(iso.config);
    await converged(iso.config);
    expect(await chRows()).toEqual(await pgRows());
    expect((await chRows()).map((r) => r.id)).toEqual([1, 2, 3, 4, 5]);
    await withPg(iso.config, (c) => c.query(`UPDATE user_login SET event_type = 'logout' WHERE id = 1; DELETE FROM user_login WHERE id = 3`));
    await converged(iso.config);
    expect(await chRows()).toEqual(await pgRows());
    expect((await chRows()).map((r) => [r.id, r.event_type])).toEqual([
      [1, 'logout'],
      [2, 'register'],
      [4, 'purchase'],
      [5, 'logout'],
    ]);
  });

  it('a ClickHouse table dropped by an operator is filled again by the next migrate', async () => {
    await pipeline?.stop();
    pipeline = null;
    const ch = createClient({ url: iso.config.clickhouseUrl });
    await ch.command({ query: `DROP TABLE ${iso.config.clickhouseDatabase}.user_login` });
    await ch.close();
    const m = await runCli(['migrate'], iso.env);
    expect(m.code, m.stderr).toBe(0);
    expect(m.stdout).toContain(`public.user_login: capture up to date; 4 rows queued to be sent (backfill); ClickHouse ${iso.config.clickhouseDatabase}.user_login created`);
    pipeline = await startPipeline(iso.config);
    await converged(iso.config);
    expect(await chRows()).toEqual(await pgRows());
  });
});
