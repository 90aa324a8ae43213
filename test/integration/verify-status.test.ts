import { createClient } from '@clickhouse/client';
import { Kafka, logLevel } from 'kafkajs';
import { afterEach, describe, expect, it } from 'vitest';
import { migrateClickHouse } from '../../src/clickhouse-migrate.js';
import type { Config } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { migratePostgres } from '../../src/pg-migrate.js';
import { formatStatus, status } from '../../src/status.js';
import { verify } from '../../src/verify.js';
import { isolate, type Isolated } from '../support/isolation.js';
import { withPg } from '../support/pg.js';

const logger = createLogger({ level: 'error' });
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!().catch(() => {});
});

async function setup(options: { clickhouseTable?: boolean } = {}): Promise<Isolated> {
  const iso = await isolate();
  cleanups.push(iso.cleanup);
  await migratePostgres(iso.config, logger);
  if (options.clickhouseTable !== false) await migrateClickHouse(iso.config, logger);
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

/** PostgreSQL rows with the given ids, marked sent unless listed in `pending`. */
async function pgRows(config: Config, ids: number[], pending: number[] = []): Promise<void> {
  await withPg(config, (c) =>
    c.query(
      `INSERT INTO user_login (id, username, event_type, event_time, sent_to_kafka)
       SELECT i, 'user_' || i, 'login', '2024-01-01', NOT (i = ANY($2::int[])) FROM unnest($1::int[]) i`,
      [ids, pending],
    ),
  );
}

/** ClickHouse rows with the given ids (the other columns take their defaults). */
const chRows = (config: Config, ids: number[]) => clickhouse(config, `INSERT INTO user_login (id, username) SELECT arrayJoin([${ids.join(',')}]) AS id, concat('user_', toString(id))`);

describe('verify', () => {
  it('passes on equal data spread over several ranges', async () => {
    const iso = await setup();
    await withPg(iso.config, (c) => c.query(`INSERT INTO user_login (username, sent_to_kafka) SELECT 'u' || g, TRUE FROM generate_series(1, 1000) g`));
    await clickhouse(iso.config, `INSERT INTO user_login (id, username) SELECT number + 1, concat('u', toString(number + 1)) FROM system.numbers LIMIT 1000`);
    const r = await verify(iso.config, logger, { rangeSize: 100, rangesPerQuery: 3 });
    expect(r).toMatchObject({ postgresRows: 1000, clickhouseRows: 1000, missing: 0, duplicated: 0, extra: 0, notYetSent: 0, pending: 0, failed: 0, ok: true });
    // ids 1..1000 touch ranges 0..10
    expect(r.rangesChecked).toBe(11);
    expect(r.rangesDiffering).toBe(0);
  });

  it('finds a row missing from ClickHouse and a row stored twice there', async () => {
    const iso = await setup();
    // Merges would fold the duplicate away: this table keeps its parts as inserted.
    await clickhouse(iso.config, `SYSTEM STOP MERGES ${iso.config.clickhouseDatabase}.user_login`);
    const ids = Array.from({ length: 500 }, (_, i) => i + 1);
    await pgRows(iso.config, ids);
    await chRows(iso.config, ids.filter((id) => id !== 137));
    await chRows(iso.config, [42]);
    const r = await verify(iso.config, logger, { rangeSize: 100 });
    expect(r).toMatchObject({
      postgresRows: 500,
      clickhouseRows: 500,
      missing: 1,
      missingExamples: [137],
      duplicated: 1,
      duplicatedExamples: [42],
      extra: 0,
      ok: false,
      rangesDiffering: 2,
    });
  });

  it('walks a gap-y id space: pending and failed rows are not missing, extra rows do not fail', async () => {
    const iso = await setup();
    // ranges of 10 ids, 2 ranges a query: ids far apart force many windows and jumps over gaps
    const ids = [1, 2, 3, 250, 251, 10_000, 10_001, 999_999, 5_000_000_007];
    await pgRows(iso.config, ids.filter((i) => i < 2 ** 31), [250, 251]);
    await withPg(iso.config, async (c) => {
      await c.query(`INSERT INTO streamer_failed_rows (id, error) VALUES (251, 'MESSAGE_TOO_LARGE')`);
      await c.query(`ALTER TABLE user_login ALTER COLUMN id TYPE bigint`);
      await c.query(`INSERT INTO user_login (id, username, sent_to_kafka) VALUES (5000000007, 'big', TRUE)`);
    });
    // ClickHouse: lacks 250, 251 (not sent) and 10,001 (sent: missing); has 5,000 and 77,777,777 extra.
    await chRows(iso.config, [1, 2, 3, 5000, 10_000, 999_999, 77_777_777, 5_000_000_007]);
    const r = await verify(iso.config, logger, { rangeSize: 10, rangesPerQuery: 2 });
    expect(r).toMatchObject({
      postgresRows: 9,
      clickhouseRows: 8,
      pending: 1,
      failed: 1,
      missing: 1,
      missingExamples: [10_001],
      notYetSent: 2,
      notYetSentExamples: [250, 251],
      duplicated: 0,
      extra: 2,
      extraExamples: [5000, 77_777_777],
      ok: false,
    });
    // non-empty ranges: [0,10) [250,260) [5000,5010) [10000,10010) [999990,1000000) [77777770,…) [5000000000,…)
    expect(r.rangesChecked).toBe(7);

    // Once 10,001 arrives, only extra and not-yet-sent rows remain: verify passes.
    await chRows(iso.config, [10_001]);
    const again = await verify(iso.config, logger, { rangeSize: 10, rangesPerQuery: 2, examples: 1 });
    expect(again).toMatchObject({ missing: 0, notYetSent: 2, notYetSentExamples: [250], extra: 2, extraExamples: [5000], ok: true });
  });

  it('says what to run when the ClickHouse table is missing', async () => {
    const iso = await setup({ clickhouseTable: false });
    await expect(verify(iso.config, logger)).rejects.toThrow(`ClickHouse has no table ${iso.config.clickhouseDatabase}.user_login — run "streamer migrate"`);
  });
});

describe('status', () => {
  it('reports pending and failed rows, ClickHouse rows and the lag of each partition', async () => {
    const iso = await setup();
    const { config } = iso;
    await pgRows(config, [1, 2, 3, 4, 5, 6], [5, 6]);
    await withPg(config, (c) => c.query(`INSERT INTO streamer_failed_rows (id, error) VALUES (6, 'MESSAGE_TOO_LARGE')`));
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
    expect(s).toEqual({
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
