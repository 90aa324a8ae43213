// The producer and the consumer under least-privilege roles: the PostgreSQL grants of
// sql/roles/postgres-producer.sql and a ClickHouse user limited to its database (18.16, our test
// server, has no SQL users: a users.d entry with <allow_databases>; sql/roles/clickhouse-consumer.sql
// on 20.5+). Rows still arrive, and the roles really are restricted.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ClickHouseLogLevel, createClient, type ClickHouseClient } from '@clickhouse/client';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateClickHouse } from '../../src/clickhouse-migrate.js';
import { createLogger } from '../../src/logger.js';
import { migratePostgres } from '../../src/pg-migrate.js';
import { ROOT, startCli } from '../support/cli.js';
import { isolate, suffix, services, type Isolated } from '../support/isolation.js';
import { withPg } from '../support/pg.js';
import { waitFor } from '../support/wait.js';

const id = suffix();
const PG_ROLE = `streamer_producer_${id}`;
const PG_PASSWORD = `pw-${id}`;
const CH_USER = `streamer_consumer_${id}`;
const CH_PASSWORD = `chpw-${id}`;
const STACK_DIR = process.env.STACK_DIR ?? path.join(ROOT, '.stack');
const USERS_D = path.join(STACK_DIR, 'clickhouse/users.d');
const USER_FILE = path.join(USERS_D, `${CH_USER}.xml`);

let iso: Isolated;
let admin: ClickHouseClient;
let rbac = false;

async function createClickHouseUser(database: string): Promise<void> {
  const version = ((await (await admin.query({ query: 'SELECT version() AS v', format: 'JSONEachRow' })).json()) as Array<{ v: string }>)[0]!.v;
  const [major, minor] = version.split('.').map(Number) as [number, number];
  rbac = major > 20 || (major === 20 && minor >= 5);
  if (rbac) {
    const sql = readFileSync(path.join(ROOT, 'sql/roles/clickhouse-consumer.sql'), 'utf8')
      .replaceAll('streamer_consumer', CH_USER)
      .replace("'change-me'", `'${CH_PASSWORD}'`)
      .replaceAll('{{database}}', database);
    for (const statement of sql.split(';').map((s) => s.replace(/--.*$/gm, '').trim()).filter(Boolean)) {
      await admin.command({ query: statement });
    }
    return;
  }
  if (!existsSync(path.dirname(USERS_D))) {
    throw new Error(`ClickHouse ${version} has no SQL users, and ${path.dirname(USERS_D)} (the native stack's ClickHouse) is not here to add one: run this test against "npm run stack:up"`);
  }
  mkdirSync(USERS_D, { recursive: true });
  writeFileSync(
    USER_FILE,
    `<yandex><users><${CH_USER}>
      <password>${CH_PASSWORD}</password>
      <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>default</profile><quota>default</quota>
      <allow_databases><database>${database}</database></allow_databases>
    </${CH_USER}></users></yandex>\n`,
  );
}

beforeAll(async () => {
  iso = await isolate({ SWEEP_INTERVAL_MS: '3600000' });
  const log = createLogger({ level: 'warn' });
  await migratePostgres(iso.config, log);
  await migrateClickHouse(iso.config, log);
  await withPg(iso.config, async (c) => {
    const grants = readFileSync(path.join(ROOT, 'sql/roles/postgres-producer.sql'), 'utf8').replaceAll('streamer_producer', PG_ROLE);
    await c.query(grants);
    await c.query(`ALTER ROLE ${PG_ROLE} PASSWORD '${PG_PASSWORD}'`);
  });
  admin = createClient({ url: iso.config.clickhouseUrl, database: iso.config.clickhouseDatabase });
  await createClickHouseUser(iso.config.clickhouseDatabase);
  // users.d is re-read every few seconds
  const probe = createClient({ url: iso.config.clickhouseUrl, username: CH_USER, password: CH_PASSWORD, database: iso.config.clickhouseDatabase, log: { level: ClickHouseLogLevel.OFF } });
  await waitFor('the restricted ClickHouse user', async () => ((await probe.query({ query: 'SELECT count() FROM user_login', format: 'JSONEachRow' }).then((r) => r.json())) ? true : undefined), 30_000, 500);
  await probe.close();
});

afterAll(async () => {
  rmSync(USER_FILE, { force: true });
  if (rbac) await admin?.command({ query: `DROP USER IF EXISTS ${CH_USER}` });
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
