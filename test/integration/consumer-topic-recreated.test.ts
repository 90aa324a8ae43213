// Issue 9, finding 5 — offsets that go backwards. The topic is deleted and re-created while the
// consumer runs (or a single broker truncates its log): new messages come at offsets the consumer
// has passed before. It must notice, say so loudly with the partition and both offsets, and store
// them; on f141f4e it dropped them as "already taken" and committed past them. Real Kafka and
// ClickHouse.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateAll, userLoginMessage } from '../support/streamer.js';
import { startConsumer, type RunningConsumer } from '../../src/sink/consumer.js';
import { createLogger } from '../../src/common/logger.js';
import { caughtUp, chQuery, createTopic, produce, testKafka, waitFor } from '../support/clickhouse.js';
import { isolate, type Isolated } from '../support/isolation.js';

let iso: Isolated;
let consumer: RunningConsumer | null = null;
const lines: string[] = [];
const PARTITIONS = 3;

beforeAll(async () => {
  iso = await isolate({ RETRY_MAX_DELAY_MS: '500' });
  const logger = createLogger({ level: 'info', pretty: false, destination: { write: (l: string) => void lines.push(l) } });
  await migrateAll(iso.config, logger);
  await createTopic(iso.config, iso.config.kafkaTopic, PARTITIONS);
  consumer = await startConsumer(iso.config, logger);
});

afterAll(async () => {
  await consumer?.stop();
  await iso?.cleanup();
});

const rows = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => userLoginMessage({ id: from + i, username: `u${from + i}`, event_type: 'login', event_time: '2024-05-06 07:08:09.000000' }));

const stats = async () => (await chQuery<{ n: string; ids: string }>(iso.config, 'SELECT toString(count()) AS n, toString(uniqExact(id)) AS ids FROM user_login'))[0];

describe('topic deleted and re-created under a running consumer (issue 9, finding 5)', () => {
  it('stores every message of the re-created topic, whose offsets start again at 0, and says what happened', async () => {
    await produce(iso.config, rows(1, 300));
    await waitFor(stats, (s) => s?.n === '300', 'the first 300 rows');
    await waitFor(() => caughtUp(iso.config, iso.config.kafkaGroupId), Boolean, 'the first commit');

    const admin = testKafka(iso.config).admin();
    await admin.connect();
    await admin.deleteTopics({ topics: [iso.config.kafkaTopic] });
    await waitFor(async () => (await admin.listTopics()).includes(iso.config.kafkaTopic), (exists) => !exists, 'the topic to be gone');
    await admin.disconnect();
    await createTopic(iso.config, iso.config.kafkaTopic, PARTITIONS);

    await produce(iso.config, rows(301, 600));
    await waitFor(stats, (s) => s?.n === '600', 'the 300 rows of the re-created topic', 90_000);
    expect(await stats()).toEqual({ n: '600', ids: '600' });
    expect(lines.some((l) => /is not there: it was deleted/.test(l))).toBe(true);
  });
});
