// Issue 9, finding 2 — many dead letters, or one too large for the dead-letter topic, must never
// halt the consumer. One bulk INSERT of 30,000 rows with a date no ClickHouse column can hold
// becomes 30,000 dead letters (~3 MB, three times the broker's max.message.bytes in one send on
// f141f4e); a dead letter larger than the DLQ topic accepts is recorded truncated, with headers that
// say so. A good row after them still arrives. Real Kafka and ClickHouse.
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateAll, userLoginMessage } from '../support/streamer.js';
import { startConsumer, type RunningConsumer } from '../../src/sink/consumer.js';
import { chCount, chQuery, produce, readTopic, testKafka, testLogger, waitFor } from '../support/clickhouse.js';
import { topicMessageCount } from '../support/kafka.js';
import { isolate, type Isolated } from '../support/isolation.js';

let iso: Isolated;
let consumer: RunningConsumer | null = null;
const DLQ_MAX_BYTES = 65_536;

beforeAll(async () => {
  iso = await isolate();
  await migrateAll(iso.config, testLogger(iso.config));
  // A dead-letter topic that takes smaller messages than the topic it serves (a common setup:
  // per-topic max.message.bytes), so that one dead letter alone cannot fit.
  const admin = testKafka(iso.config).admin();
  await admin.connect();
  await admin.createTopics({
    topics: [
      { topic: iso.config.kafkaTopic, numPartitions: 1 },
      { topic: iso.config.kafkaDlqTopic, numPartitions: 1, configEntries: [{ name: 'max.message.bytes', value: String(DLQ_MAX_BYTES) }] },
    ],
    waitForLeaders: true,
  });
  await admin.disconnect();
  consumer = await startConsumer(iso.config, testLogger(iso.config));
});

afterAll(async () => {
  await consumer?.stop();
  await iso?.cleanup();
});

// 1850 is outside every ClickHouse time type (DateTime: 1970–2105, DateTime64: 1900–2299).
const old = (id: number) => userLoginMessage({ id, username: `u${id}`, event_type: 'login', event_time: '1850-01-01 00:00:00.000000' });
const good = (id: number) => userLoginMessage({ id, username: `u${id}`, event_type: 'login', event_time: '2024-01-01 00:00:00.000000' });

describe('dead letters that do not fit one send (issue 9, finding 2)', () => {
  it('dead-letters 30,000 rows of one bulk insert in sends the broker accepts, and goes on', async () => {
    for (let from = 1; from <= 30_000; from += 5000) {
      await produce(iso.config, Array.from({ length: 5000 }, (_, i) => old(from + i)));
    }
    await produce(iso.config, [good(30_001)]);
    await waitFor(() => chCount(iso.config, 'id = 30001'), (n) => n === 1, 'the good row after 30,000 dead letters', 120_000);
    await waitFor(() => topicMessageCount(iso.config, iso.config.kafkaDlqTopic), (n) => n >= 30_000, '30,000 dead letters', 60_000);
    expect(await topicMessageCount(iso.config, iso.config.kafkaDlqTopic)).toBe(30_000);
    expect(await chCount(iso.config)).toBe(1);
    // Each is recorded for verify and status, with its reason.
    const [r] = await chQuery<{ n: string; reasons: string[] }>(iso.config, 'SELECT toString(uniqExact(key)) AS n, groupUniqArray(substring(reason, 1, 40)) AS reasons FROM streamer_dead_letters');
    expect(r).toEqual({ n: '30000', reasons: ['event_time: 1850-01-01 00:00:00.000000 i'] });
  });

  it('records a dead letter too large for the dead-letter topic truncated, with its size and hash, and goes on', async () => {
    const value = Buffer.from(`not json ${'x'.repeat(200_000)}`);
    await produce(iso.config, [{ key: 'too-big', value }, good(30_002)]);
    await waitFor(() => chCount(iso.config, 'id = 30002'), (n) => n === 1, 'the good row after the oversized dead letter', 60_000);
    const dead = await readTopic(iso.config, iso.config.kafkaDlqTopic, 30_001);
    const big = dead.find((d) => d.key === 'too-big');
    expect(big).toBeDefined();
    expect(big!.headers['x-dlq-reason']).toMatch(/not JSON/);
    expect(big!.headers['x-dlq-value-truncated']).toBe('true');
    expect(big!.headers['x-dlq-value-bytes']).toBe(String(value.length));
    expect(big!.headers['x-dlq-value-sha256']).toBe(createHash('sha256').update(value).digest('hex'));
    expect(big!.value!.length).toBeLessThan(DLQ_MAX_BYTES);
    expect(value.subarray(0, big!.value!.length).equals(big!.value!)).toBe(true); // a prefix of the original
  });
});
