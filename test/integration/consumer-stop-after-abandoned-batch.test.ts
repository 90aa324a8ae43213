// Issue 9, finding 1 — loss on SIGTERM after an abandoned batch. ClickHouse refuses a batch A
// (memory limit), the consumer is asked to stop, A's last attempt fails too and is given up; the
// next batch B of the same partition must then be neither stored nor committed past A, or A's rows
// are committed without being stored: marked sent in PostgreSQL, absent from ClickHouse, never
// read again. Real Kafka and ClickHouse, with a proxy in front of ClickHouse that fails A's insert.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateAll, userLoginMessage } from '../support/streamer.js';
import { startConsumer, type RunningConsumer } from '../../src/sink/consumer.js';
import { caughtUp, chQuery, createTopic, produce, testLogger, waitFor } from '../support/clickhouse.js';
import { isolate, type Isolated } from '../support/isolation.js';
import { httpProxy, MEMORY_LIMIT_ERROR, type HttpProxy } from '../support/proxy.js';

let iso: Isolated;
let proxy: HttpProxy;
const running: RunningConsumer[] = [];

beforeAll(async () => {
  // Batches of 5: the ten messages of one send become batch A (ids 1–5) and batch B (6–10).
  iso = await isolate({ CONSUMER_MAX_BATCH_ROWS: '5', CONSUMER_FLUSH_MS: '0', RETRY_MAX_DELAY_MS: '200' });
  await migrateAll(iso.config, testLogger(iso.config));
  await createTopic(iso.config, iso.config.kafkaTopic, 1);
  proxy = await httpProxy(iso.config.clickhouseUrl);
});

afterAll(async () => {
  for (const c of running) await c.stop().catch(() => {});
  await proxy?.close();
  await iso?.cleanup();
});

const rows = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => userLoginMessage({ id: from + i, username: `u${from + i}`, event_type: 'login', event_time: '2024-05-06 07:08:09.000000' }));

describe('consumer stop with a batch ClickHouse refused (issue 9, finding 1)', () => {
  it('never commits past a batch it gave up: every row arrives after the restart', async () => {
    const config = { ...iso.config, clickhouseUrl: proxy.url };
    const logger = testLogger(iso.config);
    const first = await startConsumer(config, logger);
    running.push(first);
    let failA = true;
    let stopping: Promise<void> | null = null;
    // Batch A's insert (it holds id 1: a line of its TabSeparated body starts "1<tab>") fails while failA;
    // at its first failure the consumer is told to stop (SIGTERM), before the failure reaches it.
    // Everything else reaches ClickHouse.
    proxy.rule = (r) => {
      if (failA && r.query.startsWith('INSERT') && /(^|\n)1\t/.test(r.body.toString('utf8'))) {
        stopping ??= first.stop();
        return { kind: 'fail', status: 500, body: MEMORY_LIMIT_ERROR };
      }
      return { kind: 'forward' };
    };
    await produce(iso.config, rows(1, 10));
    await waitFor(async () => stopping !== null, Boolean, 'the stop during batch A');
    await stopping;
    failA = false; // ClickHouse answers again

    const second = await startConsumer(config, logger);
    running.push(second);
    await waitFor(() => caughtUp(iso.config, iso.config.kafkaGroupId), Boolean, 'the restarted consumer to commit everything');
    const [r] = await chQuery<{ n: string; ids: string }>(iso.config, 'SELECT toString(count()) AS n, toString(uniqExact(id)) AS ids FROM user_login');
    expect(r).toEqual({ n: '10', ids: '10' });
  });
});
