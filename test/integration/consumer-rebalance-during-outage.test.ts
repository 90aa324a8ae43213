// Issue 9, finding 4 — duplicate after a rebalance during a long outage. Two consumers hold
// batches they cannot store (ClickHouse refuses everything) while a third joins; the rebalance
// outlasts CONSUMER_REBALANCE_TIMEOUT_MS, the new owners read the same messages again, and when
// ClickHouse answers, every holder inserts. A member must drop what belongs to partitions it no
// longer owns before inserting. Real Kafka and ClickHouse; a proxy in front of ClickHouse plays the
// outage and, when ClickHouse is back, lets inserts through only once their existence checks are
// all answered (as when several consumers retry at the same moment), so the race is certain.
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
  iso = await isolate({ CONSUMER_REBALANCE_TIMEOUT_MS: '8000', CLICKHOUSE_REQUEST_TIMEOUT_MS: '5000', RETRY_MAX_DELAY_MS: '500', CONSUMER_MAX_BATCH_ROWS: '1000' });
  await migrateAll(iso.config, testLogger(iso.config));
  await createTopic(iso.config, iso.config.kafkaTopic, 4);
  proxy = await httpProxy(iso.config.clickhouseUrl);
});

afterAll(async () => {
  await Promise.all(running.map((c) => c.stop().catch(() => {})));
  await proxy?.close();
  await iso?.cleanup();
});

const rows = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => userLoginMessage({ id: from + i, username: `u${from + i}`, event_type: 'login', event_time: '2024-05-06 07:08:09.000000' }));


describe('rebalance while ClickHouse is down (issue 9, finding 4)', () => {
  it('stores every row once when a member joins during a ClickHouse outage longer than the rebalance timeout', async () => {
    const config = { ...iso.config, clickhouseUrl: proxy.url };
    const logger = testLogger(iso.config);
    let down = true;
    proxy.rule = (r) => (down && r.query.startsWith('INSERT') ? { kind: 'fail', status: 500, body: MEMORY_LIMIT_ERROR } : { kind: 'forward' });
    running.push(await startConsumer(config, logger), await startConsumer(config, logger));
    await produce(iso.config, rows(1, 400));
    // Both members hold batches they cannot store.
    await waitFor(async () => proxy.seen.filter((r) => r.query.startsWith('INSERT')).length, (n) => n >= 4, 'failed inserts of both members');

    running.push(await startConsumer(config, logger)); // joins: the group rebalances
    // Longer than the rebalance timeout: the old members are expelled if they do not rejoin.
    await new Promise((r) => setTimeout(r, 12_000));

    // ClickHouse is back. The inserts of the first 2 s are held and then let through together,
    // so every member holding the same rows has checked what exists before any of them lands
    // (as when several consumers retry at the same moment); after that, everything passes.
    const held: Array<() => void> = [];
    let window: 'not-yet' | 'holding' | 'open' = 'not-yet';
    proxy.rule = (r) => {
      if (!r.query.startsWith('INSERT') || window === 'open') return { kind: 'forward' };
      if (window === 'not-yet') {
        window = 'holding';
        setTimeout(() => {
          window = 'open';
          for (const release of held.splice(0)) release();
        }, 2000);
      }
      return { kind: 'hold', until: new Promise<void>((resolve) => held.push(resolve)) };
    };
    down = false;

    await waitFor(() => caughtUp(iso.config, iso.config.kafkaGroupId), Boolean, 'the group to commit everything', 90_000);
    const [r] = await chQuery<{ n: string; ids: string }>(iso.config, 'SELECT toString(count()) AS n, toString(uniqExact(id)) AS ids FROM user_login');
    expect(r).toEqual({ n: '400', ids: '400' });
  });
});
