// `npm run demo`: the pipeline end to end on the local stack, for a first-time user.
// Brings the stack up (if nothing answers), migrates a demo database, loads the seed's ten rows,
// runs `streamer run`, inserts one more row as an application would and shows it arriving
// through NOTIFY with its latency, prints what ClickHouse holds, runs `streamer verify`, and
// stops what it started. It works in its own PostgreSQL database, ClickHouse database and topic
// (all named streamer_demo…), recreated on every run, so it never touches other data.
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ClickHouseLogLevel, createClient } from '@clickhouse/client';
import pg from 'pg';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BIN = path.join(ROOT, 'bin/streamer.js');
const BASE_PG = process.env.DATABASE_URL ?? 'postgres://postgres:postgres@127.0.0.1:5432/postgres';
const CH_URL = process.env.CLICKHOUSE_URL ?? 'http://127.0.0.1:8123';
const DEMO = 'streamer_demo';
const demoUrl = new URL(BASE_PG);
demoUrl.pathname = `/${DEMO}`;
const env = {
  ...process.env,
  DATABASE_URL: demoUrl.toString(),
  CLICKHOUSE_URL: CH_URL,
  CLICKHOUSE_DATABASE: DEMO,
  KAFKA_TOPIC: `${DEMO}_user_event`,
  KAFKA_GROUP_ID: `${DEMO}_clickhouse`,
  HTTP_PORT: '0',
  LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
};
// The seed's table and ten rows, exactly as the seed README gives them (the two "fresher" ones too).
const SEED_SQL = readFileSync(path.join(ROOT, 'sql/seed/user_login.sql'), 'utf8');

const say = (text) => console.log(`\n▶ ${text}`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function answers() {
  const c = new pg.Client({ connectionString: BASE_PG, connectionTimeoutMillis: 2000 });
  const ch = createClient({ url: CH_URL, request_timeout: 2000, log: { level: ClickHouseLogLevel.OFF } });
  try {
    await c.connect();
    await ch.query({ query: 'SELECT 1', format: 'JSONEachRow' }).then((r) => r.json());
    return true;
  } catch {
    return false;
  } finally {
    await c.end().catch(() => {});
    await ch.close();
  }
}

function streamer(args, options = {}) {
  const r = spawnSync(process.execPath, [BIN, ...args], { env, encoding: 'utf8', ...options });
  if (r.stdout) process.stdout.write(r.stdout);
  if (r.stderr) process.stderr.write(r.stderr);
  return r.status;
}

let startedStack = false;
let run;

async function main() {
  say('the local stack (PostgreSQL, Kafka, ClickHouse on 127.0.0.1)');
  if (!(await answers()) || spawnSync('node', [path.join(ROOT, 'scripts/stack/probe.mjs'), 'kafka'], { stdio: 'ignore' }).status !== 0) {
    const r = spawnSync('bash', [path.join(ROOT, 'scripts/stack.sh'), 'up'], { stdio: 'inherit' });
    if (r.status !== 0) throw new Error('npm run stack:up failed (see above)');
    startedStack = true;
  } else {
    console.log('already running: reusing it');
  }

  say(`a fresh demo database "${DEMO}" with the seed's table and its ten rows`);
  const admin = new pg.Client({ connectionString: BASE_PG });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${DEMO} WITH (FORCE)`);
  await admin.query(`CREATE DATABASE ${DEMO}`);
  await admin.end();
  const ch = createClient({ url: CH_URL, log: { level: ClickHouseLogLevel.OFF } });
  await ch.command({ query: `DROP DATABASE IF EXISTS ${DEMO}` });
  const db = new pg.Client({ connectionString: env.DATABASE_URL });
  await db.connect();
  await db.query(SEED_SQL);
  const seeded = Number((await db.query('SELECT count(*) AS n FROM user_login')).rows[0].n);
  console.log(`${seeded} rows, none sent to Kafka yet`);

  say('streamer migrate');
  if (streamer(['migrate']) !== 0) throw new Error('streamer migrate failed');

  say('streamer run (producer + consumer), in the background');
  run = spawn(process.execPath, [BIN, 'run'], { env, stdio: ['ignore', 'inherit', 'inherit'] });
  const chCount = async () => Number((await (await ch.query({ query: `SELECT count() AS n FROM ${DEMO}.user_login`, format: 'JSONEachRow' })).json())[0].n);
  const deadline = Date.now() + 60_000;
  while ((await chCount().catch(() => 0)) < seeded) {
    if (Date.now() > deadline || run.exitCode !== null) throw new Error('the seed rows did not reach ClickHouse within 60 s');
    await sleep(20);
  }
  console.log(`the ten seed rows are in ClickHouse`);

  say('an application inserts one more row; the trigger NOTIFYs the producer');
  const t0 = performance.now();
  const { rows } = await db.query(`INSERT INTO user_login (username, event_type, event_time) VALUES ('new_user', 'register', now()::timestamp(0)) RETURNING id`);
  const id = rows[0].id;
  for (;;) {
    const r = await (await ch.query({ query: `SELECT count() AS n FROM ${DEMO}.user_login WHERE id = ${Number(id)}`, format: 'JSONEachRow' })).json();
    if (Number(r[0].n) === 1) break;
    if (performance.now() - t0 > 30_000) throw new Error(`row ${id} did not reach ClickHouse within 30 s`);
    await sleep(1);
  }
  console.log(`row ${id}: INSERT committed → visible in ClickHouse in ${(performance.now() - t0).toFixed(1)} ms`);

  say('the application corrects row 1 and deletes row 2');
  const current = async (where) =>
    (await (await ch.query({ query: `SELECT id, username, event_type, toString(event_time) AS event_time FROM ${DEMO}.user_login_current WHERE ${where} ORDER BY id`, format: 'JSONEachRow' })).json());
  const t1 = performance.now();
  await db.query(`UPDATE user_login SET event_type = 'logout' WHERE id = 1; DELETE FROM user_login WHERE id = 2`);
  for (;;) {
    const rows = await current('id IN (1, 2)');
    if (rows.length === 1 && rows[0].event_type === 'logout') break;
    if (performance.now() - t1 > 30_000) throw new Error('the update and the delete did not reach ClickHouse within 30 s');
    await sleep(1);
  }
  console.log(`UPDATE + DELETE committed → visible in ${DEMO}.user_login_current in ${(performance.now() - t1).toFixed(1)} ms`);

  say(`what ClickHouse holds: the view ${DEMO}.user_login_current (newest version of each row, deletes hidden)`);
  console.table(await current('1'));

  say('streamer verify');
  const verified = streamer(['verify']);

  say('stopping the streamer (SIGTERM)');
  run.kill('SIGTERM');
  await new Promise((r) => run.once('exit', r));
  await db.end();
  await ch.close();
  if (startedStack) {
    say('npm run stack:down (the demo started the stack)');
    spawnSync('bash', [path.join(ROOT, 'scripts/stack.sh'), 'down'], { stdio: 'inherit' });
  }
  console.log(`\nDone. The demo data stays in PostgreSQL database ${DEMO} and ClickHouse database ${DEMO} until the next demo.`);
  process.exitCode = verified === 0 ? 0 : 1;
}

main().catch((err) => {
  console.error(`demo failed: ${err.message}`);
  if (run && run.exitCode === null) run.kill('SIGTERM');
  if (startedStack) spawnSync('bash', [path.join(ROOT, 'scripts/stack.sh'), 'down'], { stdio: 'inherit' });
  process.exitCode = 1;
});
