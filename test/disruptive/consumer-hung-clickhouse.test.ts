// Issue 9, finding 3 — duplicate after a client-side timeout. ClickHouse hangs (SIGSTOP) in the
// middle of an insert, longer than CLICKHOUSE_REQUEST_TIMEOUT_MS; the client gives up, but the
// server still runs the insert and finishes it once it runs again. On f141f4e the retry's
// existence query ran before that, found nothing, and inserted the same rows a second time.
// Real Kafka and ClickHouse. To freeze the server in the middle of an insert on demand, every
// insert of this test's table takes 3 s on the server (a MATERIALIZED column computed with
// sleep(3): the rows become visible only at its end), three times the client's timeout; the test
// freezes the server while the first insert runs, and thaws it when the consumer's first retry
// request arrives — so the old insert still has over a second to go when the retry asks what is
// stored. (Every later insert outlives the client's timeout too: all of them must be waited for.)
import { createClient } from '@clickhouse/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateAll, userLoginMessage } from '../support/streamer.js';
import { startConsumer, type RunningConsumer } from '../../src/sink/consumer.js';
import { caughtUp, chQuery, createTopic, produce, testLogger, waitFor } from '../support/clickhouse.js';
import { isolate, type Isolated } from '../support/isolation.js';
import { freezeService } from '../support/outage.js';
import { httpProxy, type HttpProxy } from '../support/proxy.js';

let iso: Isolated;
let proxy: HttpProxy;
let consumer: RunningConsumer | null = null;
let frozen: { resume(): void } | null = null;

beforeAll(async () => {
  iso = await isolate({ CLICKHOUSE_REQUEST_TIMEOUT_MS: '1000', RETRY_MAX_DELAY_MS: '500' });
  await migrateAll(iso.config, testLogger(iso.config));
  const admin = createClient({ url: iso.config.clickhouseUrl });
  await admin.command({ query: `ALTER TABLE ${iso.config.clickhouseDatabase}.user_login ADD COLUMN slow UInt8 MATERIALIZED sleep(3)` });
  await admin.close();
  await createTopic(iso.config, iso.config.kafkaTopic, 1);
  proxy = await httpProxy(iso.config.clickhouseUrl);
});

afterAll(async () => {
  frozen?.resume();
  await consumer?.stop().catch(() => {});
  await proxy?.close();
  await iso?.cleanup();
});

const rows = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => userLoginMessage({ id: from + i, username: `u${from + i}`, event_type: 'login', event_time: '2024-05-06 07:08:09.000000' }));

describe('ClickHouse hung mid-insert longer than the request timeout (issue 9, finding 3)', () => {
  it('stores every row once: the retry waits for the insert the server still has', async () => {
    const direct = createClient({ url: iso.config.clickhouseUrl });
    let phase: 'first-insert' | 'running' | 'frozen' | 'resumed' = 'first-insert';
    proxy.rule = (r) => {
      if (phase === 'first-insert' && r.query.startsWith('INSERT')) {
        phase = 'running';
        // Freeze the server while it runs this insert (it is in its 3 s, nothing visible yet).
        void waitFor(
          async () => (await (await direct.query({ query: "SELECT toString(count()) AS n FROM system.processes WHERE query LIKE 'INSERT INTO%user_login%'", format: 'JSONEachRow' })).json<{ n: string }>())[0]?.n,
          (n) => n !== '0',
          'the insert to run on the server',
          10_000,
          ).then(() => {
          frozen = freezeService('clickhouse');
          phase = 'frozen';
        });
      } else if (phase === 'frozen') {
        // The consumer's first request after its insert timed out: the server runs again, with
        // the old insert still in the middle of its 3 s.
        phase = 'resumed';
        frozen!.resume();
      }
      return { kind: 'forward' };
    };
    consumer = await startConsumer({ ...iso.config, clickhouseUrl: proxy.url }, testLogger(iso.config));
    await produce(iso.config, rows(1, 2000));
    await waitFor(() => caughtUp(iso.config, iso.config.kafkaGroupId), Boolean, 'the consumer to commit everything', 90_000);
    await direct.close();
    expect(phase).toBe('resumed');
    const [r] = await chQuery<{ n: string; ids: string }>(iso.config, 'SELECT toString(count()) AS n, toString(uniqExact(id)) AS ids FROM user_login');
    expect(r).toEqual({ n: '2000', ids: '2000' });
  });
});
