// Regression: a PostgreSQL restart while the producer waited for Kafka's acknowledgement killed the
// producer process ("Unhandled 'error' event … terminating connection due to administrator
// command", found by the postgres-restart scenario of faults.test.ts). pg-pool stops listening for
// a client's errors while it is checked out, and between CLAIM_BATCH and MARK_SENT no query is in
// flight to receive the error, so the server's FATAL became an 'error' event nobody handled.
// Deterministic here: the publish itself terminates the producer's backend, then waits.
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { EncodedMessage } from '../../src/tables/codec.js';
import { createPool } from '../../src/capture/db.js';
import { createLogger } from '../../src/common/logger.js';
import { migratePostgres } from '../../src/capture/pg-migrate.js';
import { drainBatch, loadSources } from '../../src/capture/producer.js';
import type { Publisher } from '../../src/capture/publisher.js';
import { isolate, type Isolated } from '../support/isolation.js';
import { pgCount, withPg } from '../support/pg.js';

let iso: Isolated;
const source = async () => (await withPg(iso.config, (c) => loadSources(c, iso.config)))[0]!;
beforeAll(async () => {
  iso = await isolate();
  await migratePostgres(iso.config, createLogger({ level: 'warn' }));
});
afterAll(async () => {
  await iso?.cleanup();
});

it('the connection dies while the batch is published: the batch rolls back, the process lives on', async () => {
  await withPg(iso.config, (c) => c.query(`INSERT INTO user_login (username) SELECT 'u' || g FROM generate_series(1, 5) g`));
  const logger = createLogger({ level: 'silent' });
  const pool = createPool(iso.config, logger, 'streamer-lost-conn');
  const published: EncodedMessage[][] = [];
  let kill = true;
  const publisher: Publisher = {
    connect: async () => {},
    close: async () => {},
    abandon: () => {},
    partitions: async () => [0],
    publish: async (_topic, messages) => {
      published.push([...messages]);
      if (kill) {
        kill = false;
        // What a restart does to every session: FATAL 57P01 while the client sits idle in its
        // transaction, waiting for us.
        await withPg(iso.config, (c) => c.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'streamer-lost-conn' AND datname = current_database()`));
        await new Promise((r) => setTimeout(r, 300)); // the FATAL arrives meanwhile
      }
      return [];
    },
  };
  const unhandled: unknown[] = [];
  const onUncaught = (err: unknown) => unhandled.push(err);
  process.on('uncaughtException', onUncaught);
  try {
    // First batch: the connection is gone before MARK_SENT, so the batch must fail and roll back.
    await expect(drainBatch(pool, publisher, iso.config, logger, await source(), 100)).rejects.toThrow();
    expect(unhandled).toEqual([]);
    expect(await pgCount(iso.config, 'sent_to_kafka')).toBe(0);
    // The pool hands out a working connection again: the retry publishes and marks all five.
    const r = await drainBatch(pool, publisher, iso.config, logger, await source(), 100);
    expect(r).toEqual({ claimed: 5, published: 5, failed: 0 });
    expect(await pgCount(iso.config, 'sent_to_kafka')).toBe(5);
  } finally {
    process.off('uncaughtException', onUncaught);
    await pool.end().catch(() => {});
  }
});

it('Kafka failing batch after batch: every batch rolls back, and no listener piles up on the pooled connection', async () => {
  await withPg(iso.config, (c) => c.query(`TRUNCATE user_login; INSERT INTO user_login (username) SELECT 'k' || g FROM generate_series(1, 3) g`));
  const logger = createLogger({ level: 'silent' });
  // Batches one after another: the pool hands the same idle connection back each time.
  const pool = createPool(iso.config, logger, 'streamer-kafka-down');
  let failures = 12;
  const publisher: Publisher = {
    connect: async () => {},
    close: async () => {},
    abandon: () => {},
    partitions: async () => [0],
    publish: async () => {
      if (failures-- > 0) throw new Error('Connection error: connect ECONNREFUSED 127.0.0.1:9092');
      return [];
    },
  };
  try {
    for (let i = 0; i < 12; i++) await expect(drainBatch(pool, publisher, iso.config, logger, await source(), 100)).rejects.toThrow(/ECONNREFUSED/);
    expect(await pgCount(iso.config, 'sent_to_kafka')).toBe(0);
    const clients = await Promise.all([pool.connect(), pool.connect(), pool.connect(), pool.connect()]);
    // pg-pool's own listener is off while a client is checked out: what is left would be ours.
    const listeners = clients.map((c) => c.listenerCount('error'));
    for (const c of clients) c.release();
    expect(listeners).toEqual([0, 0, 0, 0]);
    // The three rows, and the TRUNCATE's marker (README "Deletes and TRUNCATE").
    expect(await drainBatch(pool, publisher, iso.config, logger, await source(), 100)).toEqual({ claimed: 4, published: 4, failed: 0 });
    expect(await pgCount(iso.config, 'sent_to_kafka')).toBe(3);
  } finally {
    await pool.end().catch(() => {});
  }
});
