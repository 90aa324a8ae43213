// ClickHouse stops in the middle of a stream and comes back: the consumer waits (never exits),
// then stores everything, once. Slow (a real server restart), so in a file of its own.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateAll, userLoginMessage } from '../support/streamer.js';
import { startConsumer, type RunningConsumer } from '../../src/sink/consumer.js';
import { caughtUp, chQuery, createTopic, produce, testLogger, waitFor } from '../support/clickhouse.js';
import { isolate, type Isolated } from '../support/isolation.js';
import { startService, stopService } from '../support/outage.js';

let iso: Isolated;
let consumer: RunningConsumer | null = null;
let settled: string | null = null;

beforeAll(async () => {
  iso = await isolate({ RETRY_MAX_DELAY_MS: '1000' });
  const logger = testLogger(iso.config);
  await migrateAll(iso.config, logger);
  await createTopic(iso.config, iso.config.kafkaTopic);
  consumer = await startConsumer(iso.config, logger);
  consumer.done.then(
    () => (settled = 'resolved'),
    (err: unknown) => (settled = `rejected: ${String(err)}`),
  );
});

afterAll(async () => {
  startService(); // whatever happened above, leave the stack up
  await consumer?.stop();
  await iso?.cleanup();
});

const rows = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) =>
    userLoginMessage({ id: from + i, username: `u${from + i}`, event_type: 'login', event_time: '2024-05-06 07:08:09.000000' }),
  );

const stats = async () =>
  (await chQuery<{ n: string; ids: string; lo: string; hi: string }>(iso.config, 'SELECT count() AS n, uniqExact(id) AS ids, toString(min(id)) AS lo, toString(max(id)) AS hi FROM user_login'))[0];

describe('consumer: ClickHouse outage', () => {
  it('keeps every row, once, across a ClickHouse stop and start, without exiting', async () => {
    await produce(iso.config, rows(1, 200));
    await waitFor(stats, (s) => Number(s?.n) >= 200, 'rows 1–200');

    try {
      await stopService('clickhouse');
      await expect(chQuery(iso.config, 'SELECT 1', 0)).rejects.toThrow();
      // Messages keep coming while ClickHouse is away, some of them again (a producer re-send).
      for (let from = 201; from <= 400; from += 50) {
        await produce(iso.config, rows(from, from + 49));
        await new Promise((r) => setTimeout(r, 300));
      }
      await produce(iso.config, rows(150, 250));
      await new Promise((r) => setTimeout(r, 1000));
      expect(settled).toBeNull();
    } finally {
      startService();
    }

    await produce(iso.config, rows(401, 600));
    await waitFor(stats, (s) => Number(s?.n) >= 600, 'rows 1–600', 90_000);
    await waitFor(() => caughtUp(iso.config, iso.config.kafkaGroupId), Boolean, 'the consumer to commit everything', 60_000);
    expect(await stats()).toEqual({ n: '600', ids: '600', lo: '1', hi: '600' });
    expect(settled).toBeNull();

    await consumer?.stop();
    consumer = null;
    await waitFor(async () => settled, (s) => s !== null, 'done to settle', 10_000);
    expect(settled).toBe('resolved');
  });
});
