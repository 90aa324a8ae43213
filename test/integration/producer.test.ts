// The producer against real PostgreSQL and Kafka: every row published exactly once in the
// normal path, none stuck. Each test has its own database and topic.
import { afterEach, describe, expect, it } from 'vitest';
import { decodeMessage } from '../../src/tables/codec.js';
import { createLogger } from '../../src/common/logger.js';
import { migratePostgres } from '../../src/capture/pg-migrate.js';
import { startProducer, type RunningProducer } from '../../src/capture/producer.js';
import { readTopic, topicMessageCount } from '../support/kafka.js';
import { isolate, type Isolated } from '../support/isolation.js';
import { pgCount, withPg } from '../support/pg.js';
import { waitFor } from '../support/wait.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!().catch(() => {});
});

async function setup(env: Record<string, string> = {}): Promise<Isolated> {
  const iso = await isolate(env);
  cleanups.push(iso.cleanup);
  await migratePostgres(iso.config, createLogger({ level: 'warn' }));
  return iso;
}

async function producer(iso: Isolated): Promise<RunningProducer> {
  const p = await startProducer(iso.config, createLogger({ level: iso.config.logLevel }));
  cleanups.push(() => p.stop());
  return p;
}

const allSent = (iso: Isolated, n: number) =>
  waitFor(`${n} rows marked sent`, async () => ((await pgCount(iso.config, 'sent_to_kafka')) === n ? true : undefined));

describe('producer', () => {
  it('publishes an INSERT through the NOTIFY path alone (sweep timer one hour)', async () => {
    const iso = await setup({ SWEEP_INTERVAL_MS: '3600000' });
    const p = await producer(iso);
    // The start-up sweep has run on the empty table before the insert.
    await waitFor('the start-up pass', () => (p.stats.passes >= 1 ? true : undefined));
    await withPg(iso.config, (c) =>
      c.query(`INSERT INTO user_login (username, event_type, event_time) VALUES ('zoë', 'login', '2024-02-29 23:59:59.123456')`),
    );
    const [msg] = await readTopic(iso.config, 1);
    expect(msg!.key).toBe('1');
    const body = JSON.parse(msg!.value!.toString());
    expect(body).toEqual({ id: 1, username: 'zoë', event_type: 'login', event_time: '2024-02-29 23:59:59.123456', _op: 'upsert', _version: body._version });
    expect(Number.isSafeInteger(body._version) && body._version > 0).toBe(true);
    await allSent(iso, 1);
  });

  it('publishes one INSERT of 10,000 rows exactly once and marks every row sent', async () => {
    const iso = await setup({ SWEEP_INTERVAL_MS: '3600000' });
    await producer(iso);
    await withPg(iso.config, (c) =>
      c.query(`INSERT INTO user_login (username, event_type, event_time)
               SELECT 'user_' || g, 'login', '2024-01-01'::timestamp + g * interval '1 second' FROM generate_series(1, 10000) g`),
    );
    await allSent(iso, 10_000);
    expect(await topicMessageCount(iso.config)).toBe(10_000);
    const msgs = await readTopic(iso.config, 10_000);
    const ids = new Set(msgs.map((m) => m.key));
    expect(ids.size).toBe(10_000);
    expect(await pgCount(iso.config, 'sent_to_kafka IS NOT TRUE')).toBe(0);
  });

  it('publishes at start-up the rows inserted while it was down', async () => {
    const iso = await setup({ SWEEP_INTERVAL_MS: '3600000' });
    await withPg(iso.config, (c) => c.query(`INSERT INTO user_login (username) SELECT 'u' || g FROM generate_series(1, 2500) g`));
    await producer(iso);
    await allSent(iso, 2500);
    expect(await topicMessageCount(iso.config)).toBe(2500);
  });

  it('survives pg_terminate_backend of both its connections and sweeps what arrived meanwhile', async () => {
    const iso = await setup({ SWEEP_INTERVAL_MS: '3600000' });
    const p = await producer(iso);
    await waitFor('the start-up pass', () => (p.stats.passes >= 1 ? true : undefined));
    const dbName = new URL(iso.config.databaseUrl).pathname.slice(1);
    await withPg(iso.config, async (c) => {
      const { rows } = await c.query(
        `SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity
          WHERE datname = $1 AND application_name IN ('streamer-listener', 'streamer-producer')`,
        [dbName],
      );
      expect(rows.length).toBeGreaterThanOrEqual(1);
      // Inserted while the listener is down: its NOTIFY reaches nobody.
      await c.query(`INSERT INTO user_login (username) SELECT 'u' || g FROM generate_series(1, 300) g`);
    });
    await allSent(iso, 300);
    // And the NOTIFY path works again after the reconnect.
    await waitFor('listener reconnected', () => (p.ready ? true : undefined));
    await withPg(iso.config, (c) => c.query(`INSERT INTO user_login (username) VALUES ('after')`));
    await allSent(iso, 301);
    expect(await topicMessageCount(iso.config)).toBe(301);
  });

  it('two producers at once publish every row exactly once', async () => {
    const iso = await setup({ SWEEP_INTERVAL_MS: '3600000', PRODUCER_BATCH_SIZE: '100' });
    await producer(iso);
    await producer(iso);
    await withPg(iso.config, async (c) => {
      for (let i = 0; i < 20; i++) {
        await c.query(`INSERT INTO user_login (username) SELECT 'u' || g FROM generate_series(1, 250) g`);
      }
    });
    await allSent(iso, 5000);
    expect(await topicMessageCount(iso.config)).toBe(5000);
    const ids = new Set((await readTopic(iso.config, 5000)).map((m) => m.key));
    expect(ids.size).toBe(5000);
  });

  it('records a row Kafka can never accept as failed and publishes the rows after it', async () => {
    const iso = await setup({ SWEEP_INTERVAL_MS: '3600000' });
    await producer(iso);
    await withPg(iso.config, async (c) => {
      await c.query(`INSERT INTO user_login (username) VALUES ('before')`);
      // 2 MB: above the broker's default message.max.bytes (1 MiB)
      await c.query(`INSERT INTO user_login (username) VALUES (repeat('x', 2000000))`);
      await c.query(`INSERT INTO user_login (username) SELECT 'after' || g FROM generate_series(1, 50) g`);
    });
    await allSent(iso, 51);
    const failed = await withPg(iso.config, async (c) => (await c.query('SELECT table_name, key, error FROM streamer_failed_rows')).rows);
    expect(failed).toHaveLength(1);
    expect([failed[0].table_name, failed[0].key]).toEqual(['public.user_login', '2']);
    expect(failed[0].error).toMatch(/Kafka refused the message/);
    expect(await pgCount(iso.config, 'id = 2 AND sent_to_kafka IS NOT TRUE')).toBe(1);
    const msgs = await readTopic(iso.config, 51);
    expect(msgs.map((m) => m.key)).not.toContain('2');
    expect(msgs.every((m) => decodeMessage(m.value).ok)).toBe(true);
  });

  it('the same, for a row in a later batch of a backlog (those read with COPY)', async () => {
    const iso = await setup({ SWEEP_INTERVAL_MS: '3600000', PRODUCER_BATCH_SIZE: '10' });
    await withPg(iso.config, async (c) => {
      await c.query(`INSERT INTO user_login (username) SELECT 'before' || g FROM generate_series(1, 24) g`);
      await c.query(`INSERT INTO user_login (username) VALUES (repeat('x', 2000000))`); // id 25: the third batch
      await c.query(`INSERT INTO user_login (username) SELECT 'after' || g FROM generate_series(1, 30) g`);
    });
    await producer(iso); // the start-up pass finds the 55 rows: batches of 10, the first alone
    await allSent(iso, 54);
    const failed = await withPg(iso.config, async (c) => (await c.query('SELECT table_name, key FROM streamer_failed_rows')).rows);
    expect(failed).toEqual([{ table_name: 'public.user_login', key: '25' }]);
    expect(await pgCount(iso.config, 'id = 25 AND sent_to_kafka IS NOT TRUE')).toBe(1);
    const msgs = await readTopic(iso.config, 54);
    expect(msgs.map((m) => Number(m.key)).sort((a, b) => a - b)).toEqual(Array.from({ length: 55 }, (_, i) => i + 1).filter((id) => id !== 25));
    expect(await topicMessageCount(iso.config)).toBe(54);
  });

  it('re-sends rows whose flag an operator set back to FALSE, woken by the update trigger', async () => {
    const iso = await setup({ SWEEP_INTERVAL_MS: '3600000' });
    const p = await producer(iso);
    await withPg(iso.config, (c) => c.query(`INSERT INTO user_login (username) SELECT 'u' || g FROM generate_series(1, 10) g`));
    await allSent(iso, 10);
    const passes = p.stats.passes;
    await withPg(iso.config, (c) => c.query(`UPDATE user_login SET sent_to_kafka = FALSE WHERE id <= 3`));
    await waitFor('re-sent', async () => ((await topicMessageCount(iso.config)) === 13 ? true : undefined));
    await allSent(iso, 10);
    expect(p.stats.passes).toBeGreaterThan(passes);
  });
});
