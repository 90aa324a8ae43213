import { createClient } from '@clickhouse/client';
import { Kafka, logLevel } from 'kafkajs';
import { afterEach, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/config.js';
import { createLogger } from '../../src/common/logger.js';
import { migratePostgres } from '../../src/capture/pg-migrate.js';
import { formatStatus, status } from '../../src/ops/status.js';
import { verify } from '../../src/ops/verify.js';
import { isolate, type Isolated } from '../support/isolation.js';
import { migrateAll } from '../support/streamer.js';
import { withPg } from '../support/pg.js';

const logger = createLogger({ level: 'error' });
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!().catch(() => {});
});

async function setup(options: { clickhouseTable?: boolean; bigintId?: boolean } = {}): Promise<Isolated> {
  const iso = await isolate();
  cleanups.push(iso.cleanup);
  if (options.bigintId) {
    // The seed's table with a bigint key: migrate adopts it as it is (Int64 in ClickHouse).
    await withPg(iso.config, (c) => c.query(`CREATE TABLE user_login (id BIGSERIAL PRIMARY KEY, username TEXT, event_type TEXT, event_time TIMESTAMP, sent_to_kafka BOOLEAN DEFAULT FALSE)`));
  }
  if (options.clickhouseTable !== false) await migrateAll(iso.config, logger);
  else await migratePostgres(iso.config, logger);
  return iso;
}

/** Runs statements in the test's ClickHouse database. */
async function clickhouse(config: Config, ...queries: string[]): Promise<void> {
  const c = createClient({ url: config.clickhouseUrl, database: config.clickhouseDatabase });
  try {
    for (const query of queries) await c.command({ query });
  } finally {
    await c.close();
  }
}

/**
 * PostgreSQL rows with the given ids (username user_<id>), marked sent unless listed in
 * `pending`. Inserted with the capture's triggers off (session_replication_role = replica), as if
 * they had been sent long ago: the tests set ClickHouse up by hand.
 */
async function pgRows(config: Config, ids: number[], pending: number[] = []): Promise<void> {
  await withPg(config, async (c) => {
    await c.query('SET session_replication_role = replica');
    await c.query(
      `INSERT INTO user_login (id, username, event_type, event_time, sent_to_kafka)
       SELECT i, 'user_' || i, 'login', '2024-01-01', NOT (i = ANY($2::int[])) FROM unnest($1::int[]) i`,
      [ids, pending],
    );
  });
}

/** ClickHouse rows as the consumer stores them (version 1 unless given; deleted when asked). */
const chRows = (config: Config, ids: number[], o: { username?: string; version?: number; deleted?: boolean } = {}) =>
  clickhouse(
    config,
    `INSERT INTO user_login (id, username, event_type, event_time, _version, _deleted, _kafka_partition, _kafka_offset, _ingested_at)
     SELECT arrayJoin([${ids.join(',')}]) AS id, ${o.username ? `'${o.username}'` : "concat('user_', toString(id))"}, 'login', toDateTime('2024-01-01 00:00:00', 'UTC'),
            ${o.version ?? 1}, ${o.deleted ? 1 : 0}, 0, 0, now()`,
  );

describe('verify', () => {
  it('passes on equal data spread over several ranges', async () => {
    const iso = await setup();
    await pgRows(iso.config, Array.from({ length: 1000 }, (_, i) => i + 1));
    await chRows(iso.config, Array.from({ length: 1000 }, (_, i) => i + 1));
    const r = await verify(iso.config, logger, { rangeSize: 100, rangesPerQuery: 3 });
    expect(r).toMatchObject({ postgresRows: 1000, clickhouseRows: 1000, missing: 0, stale: 0, deletedButPresent: 0, duplicated: 0, notYetSent: 0, ok: true });
    // ids 1..1000 touch ranges 0..10
    expect(r.tables[0]).toMatchObject({ buckets: 11, bucketsDiffering: 0 });
  });

  it('finds a row missing, a stale value, a row deleted in PostgreSQL, and a version stored twice', async () => {
    const iso = await setup();
    // Merges would fold the duplicate away: this table keeps its parts as inserted.
    await clickhouse(iso.config, `SYSTEM STOP MERGES ${iso.config.clickhouseDatabase}.user_login`);
    const ids = Array.from({ length: 500 }, (_, i) => i + 1);
    await pgRows(iso.config, ids);
    await chRows(iso.config, ids.filter((id) => id !== 137));
    await chRows(iso.config, [42]); // the same version again
    await chRows(iso.config, [300], { username: 'old name', version: 2 }); // a newer version with other values
    await chRows(iso.config, [700]); // gone from PostgreSQL
    await chRows(iso.config, [450], { version: 5, deleted: true }); // deleted in ClickHouse, still in PostgreSQL
    const r = await verify(iso.config, logger, { rangeSize: 100 });
    expect(r.tables[0]).toMatchObject({
      postgresRows: 500,
      clickhouseRows: 499 - 1 + 1,
      missing: 2,
      stale: 1,
      deletedButPresent: 1,
      duplicated: 1,
      notYetSent: 0,
      ok: false,
      examples: { missing: ['137', '450'], stale: ['300'], deletedButPresent: ['700'], duplicated: ['42 (version 1)'], notYetSent: [], deadLettered: [] },
    });
    expect(r.ok).toBe(false);
  });

  it('walks a gap-y id space; pending and failed rows are not yet sent, not missing', async () => {
    const iso = await setup({ bigintId: true });
    const ids = [1, 2, 3, 250, 251, 10_000, 10_001, 999_999];
    await pgRows(iso.config, ids, [250, 251]);
    await withPg(iso.config, async (c) => {
      await c.query(`INSERT INTO streamer_failed_rows (table_name, key, error) VALUES ('public.user_login', '251', 'MESSAGE_TOO_LARGE')`);
      await c.query('SET session_replication_role = replica');
      await c.query(`INSERT INTO user_login (id, username, event_type, event_time, sent_to_kafka) VALUES (5000000007, 'user_5000000007', 'login', '2024-01-01', TRUE)`);
    });
    // ClickHouse: lacks 250, 251 (not sent) and 10,001 (sent: missing); has 5,000 that PostgreSQL lacks.
    await chRows(iso.config, [1, 2, 3, 5000, 10_000, 999_999]);
    await clickhouse(iso.config, `INSERT INTO user_login (id, username, event_type, event_time, _version, _deleted, _kafka_partition, _kafka_offset, _ingested_at) VALUES (5000000007, 'user_5000000007', 'login', '2024-01-01 00:00:00', 1, 0, 0, 0, now())`);
    const r = await verify(iso.config, logger, { rangeSize: 10, rangesPerQuery: 2 });
    expect(r.tables[0]).toMatchObject({
      postgresRows: 9,
      clickhouseRows: 7,
      missing: 1,
      notYetSent: 2,
      deletedButPresent: 1,
      examples: { missing: ['10001'], notYetSent: ['250', '251'], deletedButPresent: ['5000'] },
      ok: false,
    });
    // non-empty ranges: [0,10) [250,260) [5000,5010) [10000,10010) [999990,1000000) [5000000000,…)
    expect(r.tables[0]?.buckets).toBe(6);

    // Once 10,001 arrives and 5,000 is deleted there too, only rows not yet sent remain: verify passes.
    await chRows(iso.config, [10_001]);
    await chRows(iso.config, [5000], { version: 9, deleted: true });
    const again = await verify(iso.config, logger, { rangeSize: 10, rangesPerQuery: 2, examples: 1 });
    expect(again).toMatchObject({ missing: 0, deletedButPresent: 0, notYetSent: 2, ok: true });
    expect(again.tables[0]?.examples.notYetSent).toEqual(['250']);
  });

  it('says what to run when the ClickHouse table is missing', async () => {
    const iso = await setup({ clickhouseTable: false });
    await expect(verify(iso.config, logger)).rejects.toThrow(`ClickHouse has no table ${iso.config.clickhouseDatabase}.user_login (for public.user_login) — run "streamer migrate" (or check CLICKHOUSE_DATABASE)`);
  });
});

describe('status', () => {
  it('reports pending and failed rows, ClickHouse rows and the lag of each partition', async () => {
    const iso = await setup();
    const { config } = iso;
    await pgRows(config, [1, 2, 3, 4, 5, 6], [5, 6]);
    await withPg(config, (c) => c.query(`INSERT INTO streamer_failed_rows (table_name, key, error) VALUES ('public.user_login', '6', 'MESSAGE_TOO_LARGE')`));
    await chRows(config, [1, 2, 3, 4]);

    const kafka = new Kafka({ brokers: config.kafkaBrokers, logLevel: logLevel.NOTHING, clientId: 'test' });
    const admin = kafka.admin();
    await admin.connect();
    const producer = kafka.producer();
    await producer.connect();
    try {
      await admin.createTopics({ topics: [{ topic: config.kafkaTopic, numPartitions: 3 }], waitForLeaders: true });
      const to = (partition: number, n: number) => Array.from({ length: n }, (_, i) => ({ partition, key: String(i), value: 'x' }));
      await producer.send({ topic: config.kafkaTopic, messages: [...to(0, 5), ...to(1, 3)] });
      // The group consumed 2 of partition 0 and has committed nothing for partitions 1 and 2.
      await admin.setOffsets({ groupId: config.kafkaGroupId, topic: config.kafkaTopic, partitions: [{ partition: 0, offset: '2' }] });
    } finally {
      await producer.disconnect();
      await admin.disconnect();
    }

    const s = await status(config, logger);
    expect(s.tables.map((t) => [t.table, t.clickhouseTable, t.postgres.note])).toEqual([['public.user_login', `${config.clickhouseDatabase}.user_login`, null]]);
    expect(s).toMatchObject({
      ok: true,
      postgres: { pending: 1, failed: 1, total: 6, error: null },
      kafka: {
        topic: config.kafkaTopic,
        group: config.kafkaGroupId,
        topicExists: true,
        partitions: [
          { partition: 0, committed: '2', high: '5', lag: 3 },
          { partition: 1, committed: null, high: '3', lag: 3 },
          { partition: 2, committed: null, high: '0', lag: 0 },
        ],
        totalLag: 6,
        error: null,
      },
      clickhouse: { database: config.clickhouseDatabase, rows: 4, deadLetters: 0, tableExists: true, note: null, error: null },
    });
    expect(formatStatus(s)).toContain('lag 6');
  });

  it('reports a topic not created yet and a missing ClickHouse table without failing', async () => {
    const iso = await setup({ clickhouseTable: false });
    const s = await status(iso.config, logger);
    expect(s.ok).toBe(true);
    expect(s.postgres).toEqual({ pending: 0, failed: 0, total: 0, error: null });
    expect(s.kafka).toMatchObject({ topicExists: false, partitions: [], totalLag: 0, error: null });
    expect(s.clickhouse).toEqual({
      database: iso.config.clickhouseDatabase,
      rows: 0,
      deadLetters: 0,
      tableExists: false,
      note: `table ${iso.config.clickhouseDatabase}.user_login does not exist — run "streamer migrate"`,
      error: null,
    });
  });
});
