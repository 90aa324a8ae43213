// Issue 9, finding 6 — a half-open TCP connection to PostgreSQL (no reset, no answer: a cut
// network, a dead NAT entry) stalled the producer for the kernel's keep-alive time (15 min to 2 h)
// on f141f4e, and the session PostgreSQL still held kept the claimed rows locked. Now every query
// has a client-side deadline (DATABASE_QUERY_TIMEOUT_MS), after which the connection is thrown
// away, and the producer's sessions carry idle_in_transaction_session_timeout, after which
// PostgreSQL ends the orphaned session and releases its locks. Real PostgreSQL and Kafka behind a
// TCP proxy that can go half-open.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/config.js';
import { createPool } from '../../src/capture/db.js';
import { createLogger } from '../../src/common/logger.js';
import { migratePostgres } from '../../src/capture/pg-migrate.js';
import { drainBatch, loadSources, startProducer, type RunningProducer } from '../../src/capture/producer.js';
import { createPublisher, type Publisher } from '../../src/capture/publisher.js';
import { readTopic } from '../support/kafka.js';
import { isolate, type Isolated } from '../support/isolation.js';
import { tcpProxy, type TcpProxy } from '../support/proxy.js';
import { pgCount, withPg } from '../support/pg.js';
import { waitFor } from '../support/wait.js';

let iso: Isolated;
const source = async () => (await withPg(iso.config, (c) => loadSources(c, iso.config)))[0]!;
let proxy: TcpProxy;
let viaProxy: Config;
const cleanups: Array<() => Promise<void>> = [];

beforeAll(async () => {
  iso = await isolate({ DATABASE_QUERY_TIMEOUT_MS: '2000', PRODUCER_PUBLISH_TIMEOUT_MS: '2000', SWEEP_INTERVAL_MS: '500', RETRY_MAX_DELAY_MS: '500' });
  await migratePostgres(iso.config, createLogger({ level: 'warn' }));
  const url = new URL(iso.config.databaseUrl);
  proxy = await tcpProxy(url.hostname, Number(url.port || 5432));
  url.host = `127.0.0.1:${proxy.port}`;
  viaProxy = { ...iso.config, databaseUrl: url.toString() };
});

afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
  await proxy?.close();
  await iso?.cleanup();
});

const insert = (n: number, tag: string) => withPg(iso.config, (c) => c.query(`INSERT INTO user_login (username) SELECT $1 || g FROM generate_series(1, $2::int) g`, [tag, n]));

describe('half-open connections to PostgreSQL (issue 9, finding 6)', () => {
  it('a claim on a half-open connection times out; the producer reconnects and sends the rows', async () => {
    const p: RunningProducer = await startProducer(viaProxy, createLogger({ level: 'silent' }));
    await insert(1, 'first-');
    await waitFor('the first row sent', async () => ((await pgCount(iso.config, 'sent_to_kafka IS NOT TRUE')) === 0 ? true : undefined));
    proxy.blackhole(); // every open connection (pool and LISTEN) goes silent, none is closed
    await insert(20, 'after-');
    await waitFor('the 20 rows sent over new connections', async () => ((await pgCount(iso.config, 'sent_to_kafka IS NOT TRUE')) === 0 ? true : undefined), 60_000);
    expect(await pgCount(iso.config, 'sent_to_kafka')).toBe(21);
    await p.stop(); // before the next case: it must not take that case's rows
  });

  it('a connection that goes half-open inside the claim transaction: PostgreSQL ends that session and the rows are sent', async () => {
    await insert(5, 'locked-');
    const logger = createLogger({ level: 'silent' });
    const pool = createPool(viaProxy, logger, 'streamer-half-open');
    const real = createPublisher(iso.config, logger);
    await real.connect();
    cleanups.push(async () => {
      await real.close();
      await pool.end();
    });
    let cut = true;
    const publisher: Publisher = {
      connect: async () => {},
      close: async () => {},
      abandon: () => {},
      partitions: async () => [0],
      publish: async (topic, messages) => {
        if (cut) {
          cut = false;
          proxy.blackhole(); // while the claim's locks are held: MARK_SENT and COMMIT never arrive
          return real.publish(topic, messages);
        }
        return real.publish(topic, messages);
      },
    };
    await expect(drainBatch(pool, publisher, iso.config, logger, await source(), 100)).rejects.toThrow();
    // The orphaned session keeps the five rows locked until PostgreSQL ends it; then they go out.
    await waitFor('the five rows sent once the orphaned session ends', async () => {
      const r = await drainBatch(pool, publisher, iso.config, logger, await source(), 100).catch(() => null);
      return r !== null && (await pgCount(iso.config, 'sent_to_kafka IS NOT TRUE')) === 0 ? true : undefined;
    }, 60_000, 500);
    const msgs = await readTopic(iso.config, 26);
    expect(msgs.filter((m) => m.value?.toString().includes('locked-')).length).toBeGreaterThanOrEqual(5);
  });
});
