// The producer while its services go away: Kafka stopped and started again, PostgreSQL
// restarted. Every row arrives; none twice in these paths (a batch whose publish failed is
// rolled back before anything was acknowledged).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/common/logger.js';
import { migratePostgres } from '../../src/capture/pg-migrate.js';
import { startProducer, type RunningProducer } from '../../src/capture/producer.js';
import { readTopic, topicMessageCount } from '../support/kafka.js';
import { isolate, type Isolated } from '../support/isolation.js';
import { startService, stopService, restartPostgres } from '../support/outage.js';
import { pgCount, withPg } from '../support/pg.js';
import { waitFor } from '../support/wait.js';

let iso: Isolated;
let p: RunningProducer;
beforeAll(async () => {
  iso = await isolate({ SWEEP_INTERVAL_MS: '1000', RETRY_MAX_DELAY_MS: '2000' });
  await migratePostgres(iso.config, createLogger({ level: 'warn' }));
  p = await startProducer(iso.config, createLogger({ level: iso.config.logLevel }));
});
afterAll(async () => {
  startService(); // whatever happened, leave the stack up for the next file
  await p?.stop();
  await iso?.cleanup();
});

const insert = (n: number, tag: string) =>
  withPg(iso.config, (c) => c.query(`INSERT INTO user_login (username) SELECT $1 || g FROM generate_series(1, $2::int) g`, [tag, n]));

describe('producer outages', () => {
  it('Kafka unreachable, then reachable: every row arrives, none twice', async () => {
    await insert(100, 'before-');
    await waitFor('100 sent', async () => ((await pgCount(iso.config, 'sent_to_kafka')) === 100 ? true : undefined));
    await stopService('kafka');
    try {
      await insert(400, 'during-');
      // Nothing can be marked sent while Kafka is down.
      await new Promise((r) => setTimeout(r, 3000));
      expect(await pgCount(iso.config, 'sent_to_kafka')).toBe(100);
    } finally {
      startService();
    }
    await waitFor('500 sent', async () => ((await pgCount(iso.config, 'sent_to_kafka')) === 500 ? true : undefined), 120_000);
    expect(await topicMessageCount(iso.config)).toBe(500);
    const ids = new Set((await readTopic(iso.config, 500)).map((m) => m.key));
    expect(ids.size).toBe(500);
  });

  it('PostgreSQL restart: reconnects, sweeps what arrived meanwhile, NOTIFY works again', async () => {
    // Its own producer with the sweep timer at one hour: only the reconnect sweep and NOTIFY
    // can publish here.
    const iso2 = await isolate({ SWEEP_INTERVAL_MS: '3600000', RETRY_MAX_DELAY_MS: '2000' });
    await migratePostgres(iso2.config, createLogger({ level: 'warn' }));
    const p2 = await startProducer(iso2.config, createLogger({ level: iso2.config.logLevel }));
    try {
      await waitFor('the start-up pass', () => (p2.stats.passes >= 1 ? true : undefined));
      restartPostgres();
      // Inserted before the listener is back: its NOTIFY reaches nobody.
      await withPg(iso2.config, (c) => c.query(`INSERT INTO user_login (username) SELECT 'r' || g FROM generate_series(1, 200) g`));
      await waitFor('200 sent', async () => ((await pgCount(iso2.config, 'sent_to_kafka')) === 200 ? true : undefined), 120_000);
      await waitFor('listener reconnected', () => (p2.ready ? true : undefined), 60_000);
      await withPg(iso2.config, (c) => c.query(`INSERT INTO user_login (username) VALUES ('after')`));
      await waitFor('201 sent', async () => ((await pgCount(iso2.config, 'sent_to_kafka')) === 201 ? true : undefined), 60_000);
      expect(await topicMessageCount(iso2.config)).toBe(201);
    } finally {
      await p2.stop();
      await iso2.cleanup();
    }
  });
});
