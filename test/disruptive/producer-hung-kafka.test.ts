// Issue 9, finding 6 — a hung broker (SIGSTOP: connections open, no answers) held the producer's
// claim transaction, and with it the claimed rows' locks, for ~5 minutes (9 attempts × 30 s) on
// f141f4e. Now a batch's publish has a deadline (PRODUCER_PUBLISH_TIMEOUT_MS): past it the
// transaction rolls back, the rows stay pending and unlocked, and they go out once Kafka answers.
// Real PostgreSQL and Kafka; Kafka frozen with SIGSTOP, so one file at a time.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/common/logger.js';
import { migratePostgres } from '../../src/capture/pg-migrate.js';
import { startProducer, type RunningProducer } from '../../src/capture/producer.js';
import { readTopic } from '../support/kafka.js';
import { isolate, type Isolated } from '../support/isolation.js';
import { freezeService } from '../support/outage.js';
import { pgCount, withPg } from '../support/pg.js';
import { waitFor } from '../support/wait.js';

let iso: Isolated;
let p: RunningProducer | null = null;
let frozen: { resume(): void } | null = null;

beforeAll(async () => {
  iso = await isolate({ PRODUCER_PUBLISH_TIMEOUT_MS: '3000', SWEEP_INTERVAL_MS: '1000', RETRY_MAX_DELAY_MS: '1000' });
  await migratePostgres(iso.config, createLogger({ level: 'warn' }));
  p = await startProducer(iso.config, createLogger({ level: iso.config.logLevel }));
});

afterAll(async () => {
  frozen?.resume();
  await p?.stop();
  await iso?.cleanup();
});

/** Pending rows that another transaction can lock right now (none while a claim holds them). */
const lockable = () =>
  withPg(iso.config, async (c) => {
    await c.query('BEGIN');
    const { rows } = await c.query('SELECT id FROM user_login WHERE sent_to_kafka IS NOT TRUE FOR UPDATE SKIP LOCKED');
    await c.query('ROLLBACK');
    return rows.length;
  });

describe('producer with a hung Kafka broker (issue 9, finding 6)', () => {
  it('rolls the batch back at the publish deadline, leaving its rows pending and unlocked, and sends them once Kafka answers', async () => {
    await withPg(iso.config, (c) => c.query(`INSERT INTO user_login (username) VALUES ('warm-up')`));
    await readTopic(iso.config, 1); // the topic exists and the producer is connected
    frozen = freezeService('kafka');
    await withPg(iso.config, (c) => c.query(`INSERT INTO user_login (username) SELECT 'hung-' || g FROM generate_series(1, 10) g`));
    // The producer claims them (locked: another transaction cannot take them) …
    await waitFor('the producer to claim the 10 rows', async () => ((await lockable()) === 0 ? true : undefined), 10_000, 50);
    // … and lets them go at the deadline, while Kafka still does not answer.
    await waitFor('the claim to be rolled back', async () => ((await lockable()) === 10 ? true : undefined), 20_000, 100);
    expect(await pgCount(iso.config, 'sent_to_kafka IS NOT TRUE')).toBe(10);
    frozen.resume();
    await waitFor('the 10 rows to be sent', async () => ((await pgCount(iso.config, 'sent_to_kafka IS NOT TRUE')) === 0 ? true : undefined), 90_000);
    const msgs = await readTopic(iso.config, 11);
    expect(new Set(msgs.map((m) => m.key)).size).toBe(11);
  });
});
