// Of the transactions open together, the capture triggers notify for one per table and 10 ms
// bucket (streamer_notify, sql/postgres/0006), so that
// notifying transactions do not commit one at a time. These tests make a transaction skip its
// NOTIFY on purpose — another open transaction holds the advisory locks of the next seconds'
// buckets, as the first inserter of a bucket does — and check that its row is published anyway,
// with the periodic sweep one hour away: by the holder's notification, or by the producer's
// follow-up pass when it commits after the producer looked.
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/common/logger.js';
import { migratePostgres } from '../../src/capture/pg-migrate.js';
import { startProducer } from '../../src/capture/producer.js';
import { isolate, type Isolated } from '../support/isolation.js';
import { pgCount } from '../support/pg.js';
import { waitFor } from '../support/wait.js';

const KEY_SPACE = 1937011301; // streamer_notify, sql/postgres/0006_versions_notify_failed_rows.sql
const CHANNEL = 'streamer'; // src/capture/plans.ts NOTIFY_CHANNEL; the payload names the table
const TABLE_ID = 'user_login'; // objectId('public', 'user_login')

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!().catch(() => {});
});

async function setup(env: Record<string, string>): Promise<Isolated> {
  const iso = await isolate({ SWEEP_INTERVAL_MS: '3600000', ...env });
  cleanups.push(iso.cleanup);
  await migratePostgres(iso.config, createLogger({ level: 'warn' }));
  return iso;
}

async function connect(iso: Isolated): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: iso.config.databaseUrl });
  await c.connect();
  cleanups.push(() => c.end());
  return c;
}

/** In an open transaction of `c`: the trigger's locks for the next `seconds` of buckets. */
async function holdBuckets(c: pg.Client, seconds: number): Promise<void> {
  await c.query(
    `SELECT pg_advisory_xact_lock($1, (b % 2000000000)::int # hashtext($3))
       FROM generate_series(floor(extract(epoch FROM clock_timestamp()) * 100)::bigint,
                            floor(extract(epoch FROM clock_timestamp()) * 100)::bigint + $2) b`,
    [KEY_SPACE, seconds * 100, TABLE_ID],
  );
}

const sent = (iso: Isolated, username: string) => pgCount(iso.config, `username = '${username}' AND sent_to_kafka`);

describe('insert trigger: one NOTIFY per 10 ms bucket', () => {
  it('a transaction that finds its bucket taken does not notify; its row goes out with the holder\'s notification', async () => {
    const iso = await setup({});
    const p = await startProducer(iso.config, createLogger({ level: 'warn' }));
    cleanups.push(() => p.stop());
    await waitFor('the start-up pass', () => (p.stats.passes >= 1 ? true : undefined));
    const listener = await connect(iso);
    const heard: string[] = [];
    listener.on('notification', (n) => heard.push(n.payload ?? ''));
    await listener.query(`LISTEN ${CHANNEL}`);
    const holder = await connect(iso);
    const other = await connect(iso);

    await holder.query('BEGIN');
    await holdBuckets(holder, 20);
    await holder.query(`INSERT INTO user_login (username) VALUES ('holder')`);
    await other.query(`INSERT INTO user_login (username) VALUES ('skipped')`); // autocommit
    await new Promise((r) => setTimeout(r, 500));
    expect(heard).toEqual([]); // no notification: the committed row waits
    expect(await sent(iso, 'skipped')).toBe(0);

    await holder.query('COMMIT');
    await waitFor('both rows sent', async () => ((await pgCount(iso.config, 'sent_to_kafka')) === 2 ? true : undefined), 15_000);
    expect(heard).toEqual([TABLE_ID]);
  });

  it('a row that skipped its NOTIFY and committed just after the producer looked goes out with the follow-up pass', async () => {
    // A follow-up of 3 s instead of 50 ms, so that this test commits inside it whatever the load.
    const iso = await setup({ PRODUCER_FOLLOW_UP_MS: '3000' });
    const p = await startProducer(iso.config, createLogger({ level: 'warn' }));
    cleanups.push(() => p.stop());
    await waitFor('the start-up pass', () => (p.stats.passes >= 1 ? true : undefined));
    const holder = await connect(iso);
    const late = await connect(iso);

    await holder.query('BEGIN');
    await holdBuckets(holder, 20);
    await holder.query(`INSERT INTO user_login (username) VALUES ('holder')`);
    await late.query('BEGIN');
    await late.query(`INSERT INTO user_login (username) VALUES ('late')`); // bucket taken: no NOTIFY
    await holder.query('COMMIT'); // notifies: the producer's pass cannot see 'late' yet
    await waitFor('the holder\'s row sent', async () => ((await sent(iso, 'holder')) === 1 ? true : undefined), 15_000);
    const passes = p.stats.passes;
    await late.query('COMMIT');
    expect(await sent(iso, 'late')).toBe(0);
    await waitFor('the late row sent by the follow-up pass', async () => ((await sent(iso, 'late')) === 1 ? true : undefined), 15_000);
    expect(p.stats.passes).toBeGreaterThan(passes);
  });
});
