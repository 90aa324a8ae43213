// The producer and the consumer under least-privilege roles: the PostgreSQL grants that
// `streamer grants --postgres` prints and a ClickHouse user limited to its database (the SQL of
// `streamer grants --clickhouse` on 20.5+; 18.16, our test server, has no SQL users: a users.d
// entry with <allow_databases>, written where the running server reads it — see
// test/support/clickhouse-users.ts). Inserts, updates and deletes still arrive, and the roles
// really are restricted.
import { ClickHouseLogLevel, createClient, type ClickHouseClient } from '@clickhouse/client';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/common/logger.js';
import { runCli, startCli } from '../support/cli.js';
import { createRestrictedUser, type RestrictedUser } from '../support/clickhouse-users.js';
import { isolate, suffix, services, type Isolated } from '../support/isolation.js';
import { withPg } from '../support/pg.js';
import { migrateAll } from '../support/streamer.js';
import { waitFor } from '../support/wait.js';

const id = suffix();
const PG_ROLE = `streamer_producer_${id}`;
const PG_PASSWORD = `pw-${id}`;
const CH_USER = `streamer_consumer_${id}`;
const CH_PASSWORD = `chpw-${id}`;

let iso: Isolated;
let admin: ClickHouseClient;
let restricted: RestrictedUser | null = null;

beforeAll(async () => {
  iso = await isolate({ SWEEP_INTERVAL_MS: '3600000' });
  const log = createLogger({ level: 'warn' });
  await migrateAll(iso.config, log);
  const pgGrants = await runCli(['grants', '--postgres', '--role', PG_ROLE], iso.env);
  expect(pgGrants.code, pgGrants.stderr).toBe(0);
  await withPg(iso.config, async (c) => {
    await c.query(pgGrants.stdout);
    await c.query(`ALTER ROLE ${PG_ROLE} PASSWORD '${PG_PASSWORD}'`);
  });
  const chGrants = await runCli(['grants', '--clickhouse'], iso.env);
  expect(chGrants.code, chGrants.stderr).toBe(0);
  admin = createClient({ url: iso.config.clickhouseUrl, database: iso.config.clickhouseDatabase });
  restricted = await createRestrictedUser(admin, iso.config.clickhouseUrl, {
    user: CH_USER,
    password: CH_PASSWORD,
    database: iso.config.clickhouseDatabase,
    roleSql: chGrants.stdout,
  });
  // users.d is re-read every few seconds
  const probe = createClient({ url: iso.config.clickhouseUrl, username: CH_USER, password: CH_PASSWORD, database: iso.config.clickhouseDatabase, log: { level: ClickHouseLogLevel.OFF } });
  await waitFor('the restricted ClickHouse user', async () => ((await probe.query({ query: 'SELECT count() FROM user_login', format: 'JSONEachRow' }).then((r) => r.json())) ? true : undefined), 30_000, 500);
  await probe.close();
});

afterAll(async () => {
  await restricted?.drop();
  await admin?.close();
  await iso?.cleanup();
  const c = new pg.Client({ connectionString: services().databaseUrl });
  await c.connect();
  await c.query(`DROP ROLE IF EXISTS ${PG_ROLE}`);
  await c.end();
});

describe('least privilege', () => {
  it('producer and consumer run under the restricted roles and every row arrives', async () => {
    const url = new URL(iso.config.databaseUrl);
    url.username = PG_ROLE;
    url.password = PG_PASSWORD;
    const run = startCli(['run'], { ...iso.env, DATABASE_URL: url.toString(), CLICKHOUSE_USER: CH_USER, CLICKHOUSE_PASSWORD: CH_PASSWORD });
    try {
      await withPg(iso.config, (c) => c.query(`INSERT INTO user_login (username, event_type) SELECT 'u' || g, 'login' FROM generate_series(1, 500) g`));
      await waitFor('500 rows in ClickHouse', async () => {
        const r = (await (await admin.query({ query: 'SELECT count() AS n FROM user_login', format: 'JSONEachRow' })).json()) as Array<{ n: string }>;
        return Number(r[0]!.n) === 500 ? true : undefined;
      });
      const sent = await withPg(iso.config, async (c) => (await c.query('SELECT count(*)::int AS n FROM user_login WHERE sent_to_kafka')).rows[0].n);
      expect(sent).toBe(500);
      // Updates and deletes go through the change log and the version sequence: granted too.
      await withPg(iso.config, (c) => c.query(`UPDATE user_login SET event_type = 'logout' WHERE id <= 10; DELETE FROM user_login WHERE id > 495`));
      const live = async () =>
        (await (await admin.query({ query: "SELECT count() AS n, countIf(event_type = 'logout') AS logout FROM user_login FINAL WHERE _deleted = 0", format: 'JSONEachRow' })).json()) as Array<{ n: string; logout: string }>;
      await waitFor('the update and the deletes in ClickHouse', async () => ((await live())[0]?.n === '495' && (await live())[0]?.logout === '10' ? true : undefined));
    } finally {
      run.child.kill('SIGTERM');
      expect(await run.exited).toBe(0);
    }
    expect(run.output()).not.toContain(PG_PASSWORD);
    expect(run.output()).not.toContain(CH_PASSWORD);
  });

  it('the PostgreSQL role can change the flag but no other column, and cannot delete', async () => {
    const url = new URL(iso.config.databaseUrl);
    url.username = PG_ROLE;
    url.password = PG_PASSWORD;
    const c = new pg.Client({ connectionString: url.toString() });
    await c.connect();
    try {
      await expect(c.query(`UPDATE user_login SET username = 'x' WHERE id = 1`)).rejects.toThrow(/permission denied/);
      await expect(c.query(`DELETE FROM user_login WHERE id = 1`)).rejects.toThrow(/permission denied/);
      await expect(c.query(`UPDATE user_login SET sent_to_kafka = TRUE WHERE id = 1`)).resolves.toBeDefined();
    } finally {
      await c.end();
    }
  });

  it('the ClickHouse user cannot read other databases', async () => {
    const restricted = createClient({ url: iso.config.clickhouseUrl, username: CH_USER, password: CH_PASSWORD, log: { level: ClickHouseLogLevel.OFF } });
    try {
      await expect(restricted.query({ query: `SELECT count() FROM default.streamer_no_such_table_${id}` })).rejects.toThrow(
        /Access denied|ACCESS_DENIED|Not enough privileges/,
      );
    } finally {
      await restricted.close();
    }
  });
});
